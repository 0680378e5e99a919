require ["editheader","fileinto","variables","relational","comparator-i;ascii-numeric"];
addheader "X-A" "one";
addheader "X-A" "two";
if header :index 1 :is "x-a" "two" { fileinto "prepended"; }
deleteheader :index 1 :last "x-a";
if header :count "eq" :comparator "i;ascii-numeric" "x-a" "1" { fileinto "one-left"; }
if header :is "x-a" "two" { fileinto "two-left"; }
deleteheader :contains "x-multi" ["ir", "ec"];
if header :count "eq" :comparator "i;ascii-numeric" "x-multi" "0" { fileinto "multi-gone"; }
if header :matches "subject" "*" { addheader "X-Subj" "${1}"; }
if header :contains "x-subj" "very long" { fileinto "copied-subject"; }
deleteheader "x-nonexistent";
addheader "X-Auto" "1";
deleteheader "auto-submitted";
if exists "auto-submitted" { fileinto "autosub-protected"; }
