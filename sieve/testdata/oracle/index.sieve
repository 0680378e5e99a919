require ["fileinto", "date", "index"];
if header :index 1 :contains "received" "mx.example.com" { fileinto "index0"; }
if header :index 2 :contains "received" "client" { fileinto "index1"; }
if header :index 1 :last :contains "received" "client" { fileinto "index2"; }
if header :index 2 :is "x-multi" "second" { fileinto "index3"; }
if header :index 3 :last :is "x-multi" "first" { fileinto "index4"; }
if header :index 9 :is "x-multi" "first" { fileinto "index5"; }
if address :index 2 :is "to" "bob@example.org" { fileinto "index6"; }
if date :index 1 :last :is "received" "minute" "59" { fileinto "index7"; }
