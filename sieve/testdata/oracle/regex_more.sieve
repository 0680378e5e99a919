require ["fileinto", "regex", "variables"];
if header :regex "subject" "^[[:alpha:]]+ " { fileinto "regex_more0"; }
if header :regex "subject" "report$" { fileinto "regex_more1"; }
if header :regex "from" "<([^@]+)@" { fileinto "regex_more2"; }
if header :regex "subject" "^.{5}" { fileinto "regex_more3"; }
if header :regex "subject" "[Ww]orld" { fileinto "regex_more4"; }
if address :regex :domain "from" "^example\\.(com|de)$" { fileinto "regex_more5"; }
if header :regex "x-multi" "^s" { fileinto "regex_more6"; }
if header :regex "subject" "x|^H" { fileinto "regex_more7"; }
