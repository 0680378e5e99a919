require ["body", "fileinto"];
if body :text :contains "& entities" { fileinto "entity-decoded"; }
if body :text :contains "&amp;" { fileinto "entity-raw"; }
if body :text :contains "HTML only" { fileinto "text"; }
if body :text :contains "<i>" { fileinto "tags"; }
if body :text :contains "No subject, HTML" { fileinto "joined"; }
if body :content "text/html" :contains "<i>" { fileinto "content-html"; }
if body :text :contains "shipped. Track" { fileinto "mime-joined"; }
if body :text :matches "*order*" { fileinto "m"; }
