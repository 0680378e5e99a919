require ["fileinto", "regex", "variables"];
if header :regex "subject" "^Hello (w.*)d report$" { fileinto "regex0"; }
if header :regex "subject" "[0-9]{5}" { fileinto "regex1"; }
if header :regex :comparator "i;octet" "subject" "hello" { fileinto "regex2"; }
if header :regex "subject" "HELLO" { fileinto "regex3"; }
if address :regex "from" "^[a-z]+@example\\.(com|org)$" { fileinto "regex4"; }
if header :regex "subject" "(a|b)+c" { fileinto "regex5"; }
if header :regex "subject" "^$" { fileinto "regex6"; }
