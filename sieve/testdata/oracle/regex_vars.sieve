require ["regex","variables","fileinto"];
if header :regex "subject" "^(.*) (order|report) ?(.*)$" { fileinto "0=${0}|1=${1}|2=${2}|3=${3}"; }
