require ["envelope","fileinto","variables","subaddress"];
if envelope :matches "to" "*+*@*" { fileinto "u=${1} d=${2} dom=${3}"; }
if envelope :all :is "to" "ME+BOX@EXAMPLE.NET" { fileinto "case"; }
if envelope :comparator "i;octet" :all :is "to" "ME+BOX@EXAMPLE.NET" { fileinto "octet"; }
if envelope :user :is ["to","from"] "sender" { fileinto "user-from"; }
if envelope :detail :is "from" "" { fileinto "from-detail"; }
