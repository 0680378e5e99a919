require ["fileinto", "subaddress"];
if address :user :is "to" "me" { fileinto "subaddress0"; }
if address :detail :is "to" "work" { fileinto "subaddress1"; }
if address :detail :is "to" "" { fileinto "subaddress2"; }
if address :detail :matches "to" "*" { fileinto "subaddress3"; }
if address :detail :is "bcc" "secret+deep" { fileinto "subaddress4"; }
if address :user :is "bcc" "me" { fileinto "subaddress5"; }
if address :detail :is "from" "lists" { fileinto "subaddress6"; }
if address :user :is "from" "bob" { fileinto "subaddress7"; }
if address :detail :matches "from" "?*" { fileinto "subaddress8"; }
