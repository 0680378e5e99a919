require ["imap4flags","fileinto"];
setflag "\\Seen";
addflag ["\\Flagged", "$Label1"];
fileinto "with-flags";
removeflag "\\Seen";
fileinto :flags "\\Answered custom" "explicit";
if hasflag :contains "label" { fileinto "has-label"; }
if hasflag "\\flagged" { fileinto "has-flagged"; }
addflag "a b  c a";
