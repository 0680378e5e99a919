require "fileinto";
fileinto "a\b\"c\\d";
if header :contains "subject" "\w\o\r\l\d" { fileinto "escaped-letters"; }
fileinto text: # comment after text:
line1
..dot-stuffed
.
;
fileinto "multi
line";
