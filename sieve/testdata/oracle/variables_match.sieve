require ["variables","fileinto"];
if header :matches "subject" "* *" { fileinto "1=${1}|2=${2}|0=${0}"; }
if header :matches "from" "*<*@*>" { fileinto "name=${1} local=${2} dom=${3}"; }
if address :matches "from" "*@*" { fileinto "a=${1}/${2}"; }
if header :matches "subject" "*?*" { fileinto "q=${1}|${2}|${3}"; }
if header :matches "subject" "**" { fileinto "s=${1}|${2}"; }
if header :matches "date" "*, * * *" { fileinto "d=${2}-${3}"; }
if header :matches "nonexistent" "*" { fileinto "never"; }
fileinto "last=${1}";
