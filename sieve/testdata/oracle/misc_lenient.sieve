require ["body", "duplicate", "fileinto"];
if body :content "text plain" :contains "e" { fileinto "spaced-type"; }
if duplicate :header "bad name" { fileinto "dup"; }
fileinto "end";
