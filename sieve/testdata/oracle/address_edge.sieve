require ["fileinto"];
if address :is "to" "me+box@example.net" { fileinto "address_edge0"; }
if address :is "to" "bob@example.org" { fileinto "address_edge1"; }
if address :is "cc" "dave@example.org" { fileinto "address_edge2"; }
if address :comparator "i;octet" :is "cc" "dave@Example.ORG" { fileinto "address_edge3"; }
if address :all :contains "from" "joerg" { fileinto "address_edge4"; }
if address :domain :is "from" "example.de" { fileinto "address_edge5"; }
if address :localpart :is ["to","cc"] "eve" { fileinto "address_edge6"; }
if address :is "from" "not an address at all" { fileinto "address_edge7"; }
if address :contains "from" "not" { fileinto "address_edge8"; }
if address :domain :matches "cc" "*" { fileinto "address_edge9"; }
if address :localpart :is "cc" "broken" { fileinto "address_edge10"; }
if address :all :is "cc" "broken@" { fileinto "address_edge11"; }
if address :is "resent-from" "" { fileinto "address_edge12"; }
if address :all :matches "subject" "*" { fileinto "address_edge13"; }
if address :matches "x-multi" "*" { fileinto "address_edge14"; }
