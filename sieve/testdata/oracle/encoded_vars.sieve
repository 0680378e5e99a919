require ["variables","fileinto"];
if header :matches "subject" "* *" { fileinto "1=${1}"; }
if header :matches "from" "*<*" { fileinto "n=${1}"; }
