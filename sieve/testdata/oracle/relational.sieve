require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "10" { fileinto "relational0"; }
if header :value "lt" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "relational1"; }
if header :value "ge" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "relational2"; }
if header :value "eq" :comparator "i;ascii-numeric" "x-priority" "03" { fileinto "relational3"; }
if header :value "ne" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "relational4"; }
if header :value "gt" "subject" "M" { fileinto "relational5"; }
if header :value "lt" :comparator "i;octet" "subject" "a" { fileinto "relational6"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-multi" "3" { fileinto "relational7"; }
if header :count "ge" :comparator "i;ascii-numeric" "received" "2" { fileinto "relational8"; }
if address :count "eq" :comparator "i;ascii-numeric" ["to","cc"] "5" { fileinto "relational9"; }
if address :count "gt" :comparator "i;ascii-numeric" "to" "1" { fileinto "relational10"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-nonexistent" "0" { fileinto "relational11"; }
if header :value "gt" :comparator "i;ascii-numeric" "subject" "5" { fileinto "relational12"; }
if header :is :comparator "i;ascii-numeric" "x-priority" "3abc" { fileinto "relational13"; }
if header :is :comparator "i;ascii-numeric" "subject" "xyz" { fileinto "relational14"; }
