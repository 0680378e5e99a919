require ["variables","fileinto","envelope","subaddress"];
set "h" "subject";
set "k" "report";
if header :contains "${h}" "${k}" { fileinto "dyn-header"; }
set "ep" "to";
if envelope :detail :is "${ep}" "box" { fileinto "dyn-envelope"; }
set "p" "*o*";
if header :matches "${h}" "${p}" { fileinto "dyn-matches=${1}"; }
