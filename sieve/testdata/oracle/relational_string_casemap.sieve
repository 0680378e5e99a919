require ["relational","fileinto","variables"];
if string :value "gt" "B" "a" { fileinto "casemap-gt"; }
if string :value "lt" "a" "B" { fileinto "casemap-lt"; }
if header :value "gt" "subject" "a" { fileinto "header-gt"; }
