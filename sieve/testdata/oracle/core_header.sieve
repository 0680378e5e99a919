require ["fileinto"];
if header :is "subject" "Hello world report" { fileinto "core_header0"; }
if header :is "Subject" "hello WORLD report" { fileinto "core_header1"; }
if header :comparator "i;octet" :is "subject" "hello world report" { fileinto "core_header2"; }
if header :contains "subject" "world" { fileinto "core_header3"; }
if header :contains ["x-foo","subject"] ["nothing","REPORT"] { fileinto "core_header4"; }
if header :matches "subject" "Hello*" { fileinto "core_header5"; }
if header :matches "subject" "*order ?????*" { fileinto "core_header6"; }
if header :matches "subject" "?*" { fileinto "core_header7"; }
if header :matches "subject" "" { fileinto "core_header8"; }
if header :is "subject" "" { fileinto "core_header9"; }
if header :is "x-empty" "" { fileinto "core_header10"; }
if header :matches "x-empty" "*" { fileinto "core_header11"; }
if header :is "x-spaces" "padded value" { fileinto "core_header12"; }
if header :contains "subject" "" { fileinto "core_header13"; }
if header :is "x-multi" "second" { fileinto "core_header14"; }
if header :matches "from" "*@*" { fileinto "core_header15"; }
if header :contains "subject" "Grüße" { fileinto "core_header16"; }
if header :contains "subject" "München and a very" { fileinto "core_header17"; }
if header :matches "subject" "*aus M?nchen*" { fileinto "core_header18"; }
if header :contains "received" "client.example.com" { fileinto "core_header19"; }
if header :comparator "i;octet" :contains "Subject" "[dev]" { fileinto "core_header20"; }
if header :matches "subject" "\\[dev\\]*" { fileinto "core_header21"; }
if header :matches "subject" "*\\**" { fileinto "core_header22"; }
if header :matches "subject" "re: * \\[ticket #*\\]" { fileinto "core_header23"; }
