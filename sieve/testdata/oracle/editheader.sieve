require ["editheader","fileinto"];
addheader "X-Sieve-Added" "yes";
if header :is "x-sieve-added" "yes" { fileinto "added"; }
addheader :last "X-Multi" "fourth";
if header :index 4 :is "x-multi" "fourth" { fileinto "last"; }
deleteheader "subject";
if not exists "subject" { fileinto "deleted"; }
deleteheader :index 1 "x-multi";
if header :index 1 :is "x-multi" "second" { fileinto "idx-deleted"; }
deleteheader :matches "x-multi" "th*";
if not header :is "x-multi" "third" { fileinto "pattern-deleted"; }
deleteheader "received";
if exists "received" { fileinto "received-kept"; }
addheader "X-Uml" "Grüße";
if header :is "x-uml" "Grüße" { fileinto "uml"; }
