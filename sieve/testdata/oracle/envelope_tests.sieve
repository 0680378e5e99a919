require ["fileinto", "envelope", "subaddress"];
if envelope :is "from" "sender@example.com" { fileinto "envelope_tests0"; }
if envelope :is "from" "" { fileinto "envelope_tests1"; }
if envelope :localpart :is "from" "sender" { fileinto "envelope_tests2"; }
if envelope :domain :is "from" "example.com" { fileinto "envelope_tests3"; }
if envelope :is "to" "me+box@example.net" { fileinto "envelope_tests4"; }
if envelope :user :is "to" "me" { fileinto "envelope_tests5"; }
if envelope :detail :is "to" "box" { fileinto "envelope_tests6"; }
if envelope :detail :matches "to" "*" { fileinto "envelope_tests7"; }
if envelope :domain :is "to" "EXAMPLE.NET" { fileinto "envelope_tests8"; }
if envelope :matches "from" "*" { fileinto "envelope_tests9"; }
if envelope :localpart :matches "from" "*" { fileinto "envelope_tests10"; }
if envelope :all :contains ["from","to"] "example" { fileinto "envelope_tests11"; }
