require ["fileinto", "body", "variables"];
if body :content "" :contains "shipped" { fileinto "body_more0"; }
if body :content "text" :contains "Track" { fileinto "body_more1"; }
if body :content "text/plain" :contains "Café" { fileinto "body_more2"; }
if body :content ["image", "application"] :contains "Invoice" { fileinto "body_more3"; }
if body :raw :contains "--inner" { fileinto "body_more4"; }
if body :text :matches "*order*shipped*" { fileinto "body_more5"; }
if body :text :is "Work stuff." { fileinto "body_more6"; }
if body :contains "Grüße aus" { fileinto "body_more7"; }
if body :comparator "i;octet" :contains "HELLO" { fileinto "body_more8"; }
if body :contains "hello" { fileinto "body_more9"; }
if body :raw :contains "Content-Transfer-Encoding" { fileinto "body_more10"; }
if body :content "text/html" :contains "<a href" { fileinto "body_more11"; }
