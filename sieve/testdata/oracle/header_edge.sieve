require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if header :contains "x-nonexistent" "" { fileinto "header_edge0"; }
if header :is "X-MULTI" ["first","nope"] { fileinto "header_edge1"; }
if header :count "eq" :comparator "i;ascii-numeric" ["x-multi","subject"] "4" { fileinto "header_edge2"; }
if header :count "gt" :comparator "i;ascii-numeric" "x-multi" "2" { fileinto "header_edge3"; }
if header :count "lt" "x-multi" "10" { fileinto "header_edge4"; }
if header :value "eq" "subject" ["", "x"] { fileinto "header_edge5"; }
if header :contains "date" "Dec" { fileinto "header_edge6"; }
if header :is "content-type" "text/plain; charset=utf-8" { fileinto "header_edge7"; }
if header :contains "subject" "  " { fileinto "header_edge8"; }
if header :contains "subject" "\t" { fileinto "header_edge9"; }
