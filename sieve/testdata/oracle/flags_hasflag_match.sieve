require ["imap4flags","fileinto","variables","relational","comparator-i;ascii-numeric"];
setflag ["\\Seen", "Junk", "NonJunk"];
if hasflag :matches "*junk" { fileinto "m=${1}"; }
if hasflag :contains "seen" { fileinto "contains"; }
if hasflag :comparator "i;octet" :is "junk" { fileinto "octet"; }
if hasflag :count "ge" :comparator "i;ascii-numeric" "3" { fileinto "count"; }
if hasflag ["x", "junk"] { fileinto "list"; }
set "v" "a b";
if hasflag "v" "b" { fileinto "var"; }
