require ["variables","fileinto"];
if header :matches "subject" "*o*" { set "first" "${1}|${2}"; }
if header :matches "subject" "nomatch*" { set "x" "never"; }
fileinto "kept=${1}|${2}|${first}";
if anyof(header :matches "x-nothing" "*", header :matches "from" "*@*") { fileinto "any=${1}|${2}"; }
if header :matches "subject" "?" { fileinto "one"; }
fileinto "ten=${10}|big=${99999999999}|bad=${1a}|open=${1";
if allof(header :matches "from" "*@*", header :matches "to" "*@*") { fileinto "all=${1}|${2}"; }
if not header :matches "subject" "zzz*" { fileinto "neg=${1}"; }
