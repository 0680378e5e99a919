require ["fileinto"];
if address :is "from" "alice@example.com" { fileinto "core_address0"; }
if address :all :is "from" "ALICE@EXAMPLE.COM" { fileinto "core_address1"; }
if address :localpart :is "from" "alice" { fileinto "core_address2"; }
if address :domain :is "from" "example.com" { fileinto "core_address3"; }
if address :domain :is "to" "example.org" { fileinto "core_address4"; }
if address :is "to" "carol@example.org" { fileinto "core_address5"; }
if address :domain :is "cc" "example.org" { fileinto "core_address6"; }
if address :localpart :matches "to" "me*" { fileinto "core_address7"; }
if address :contains "to" "myself" { fileinto "core_address8"; }
if address :is "from" "joerg@example.de" { fileinto "core_address9"; }
if address :comparator "i;octet" :domain :is "cc" "Example.ORG" { fileinto "core_address10"; }
if address :all :is "to" "undisclosed-recipients:;" { fileinto "core_address11"; }
if address :matches "from" "*" { fileinto "core_address12"; }
if address :is "cc" "good@example.com" { fileinto "core_address13"; }
if address :is "reply-to" "bob@example.org" { fileinto "core_address14"; }
if address :localpart :is "to" "me+work" { fileinto "core_address15"; }
if address :matches ["from","sender"] "*lists*" { fileinto "core_address16"; }
if address :domain :contains "from" "shop" { fileinto "core_address17"; }
