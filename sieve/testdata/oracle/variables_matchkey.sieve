require ["variables","fileinto"];
set "pat" "*report";
if header :matches "subject" "${pat}" { fileinto "dyn=${1}"; }
set :quotewildcard "lit" "*report";
if header :matches "subject" "${lit}" { fileinto "quoted"; }
if string :is "${pat}" "*report" { fileinto "str-is"; }
if string :matches "abc" "a?c" { fileinto "str-m=${1}"; }
if string :count "eq" ["a","","b"] "2" { fileinto "count"; }
