require ["fileinto","variables"];
if address :matches "to" "*@*" { fileinto "a=${1}@${2}"; }
if address :is "to" "a@x.example" { fileinto "ga"; }
if address :is "to" "b@y.example" { fileinto "gb"; }
if address :is "cc" "quoted local@example.com" { fileinto "quoted"; }
if address :localpart :is "cc" "quoted local" { fileinto "quoted-lp"; }
if address :is "bcc" "comment@example.com" { fileinto "comment"; }
if address :is "from" "route@example.com" { fileinto "route"; }
if header :contains "from" "Grüß" { fileinto "enc-name"; }
