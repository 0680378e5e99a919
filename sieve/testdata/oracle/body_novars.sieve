require ["body","variables","fileinto"];
if header :matches "subject" "*" { set "s" "x"; }
if body :matches "*e*" { fileinto "m=${1}"; }
