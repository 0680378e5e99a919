require "fileinto";
if header :contains "subject" "report" { fileinto "reports"; }
elsif header :contains "subject" "order" { fileinto "orders"; }
elsif exists "list-id" { fileinto "lists"; }
else { fileinto "other"; }
if address :is "to" "me@example.net" { keep; } else { discard; }
