require ["editheader","fileinto","variables"];
addheader "X-Long" "a very long header value that goes on and on and on beyond seventy-eight columns for sure yes";
if header :is "x-long" "a very long header value that goes on and on and on beyond seventy-eight columns for sure yes" { fileinto "long-ok"; }
addheader "X-Empty" "";
if exists "x-empty" { fileinto "empty-exists"; }
deleteheader :comparator "i;octet" :is "x-multi" "FIRST";
if header :is "x-multi" "first" { fileinto "octet-kept"; }
deleteheader :is "x-multi" "FIRST";
if not header :is "x-multi" "first" { fileinto "casemap-deleted"; }
