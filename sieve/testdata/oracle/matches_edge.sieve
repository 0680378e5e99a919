require ["fileinto"];
if header :matches "subject" "*" { fileinto "matches_edge0"; }
if header :matches "subject" "**" { fileinto "matches_edge1"; }
if header :matches "subject" "*?" { fileinto "matches_edge2"; }
if header :matches "subject" "?*?" { fileinto "matches_edge3"; }
if header :matches "subject" "H*o*r*t" { fileinto "matches_edge4"; }
if header :matches "subject" "*\\?*" { fileinto "matches_edge7"; }
if header :matches "x-empty" "?*" { fileinto "matches_edge8"; }
if header :matches "to" "*,*" { fileinto "matches_edge11"; }
if header :matches "subject" "*[[]*" { fileinto "matches_edge12"; }
if header :matches "subject" "\\\\*" { fileinto "matches_edge13"; }
if header :matches "message-id" "<*@*>" { fileinto "matches_edge14"; }
if header :matches ["subject","from"] ["nomatch","*example*"] { fileinto "matches_edge15"; }
if header :matches "subject" "*a*a*a*a*a*a*a*a*a*a*z" { fileinto "matches_edge16"; }
