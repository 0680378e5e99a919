require ["fileinto", "variables", "body"];
if header :contains "subject" "HelloWorld" { fileinto "encoded_words0"; }
if header :contains "subject" "Hello World" { fileinto "encoded_words1"; }
if header :contains "subject" "plain café" { fileinto "encoded_words2"; }
if header :contains "subject" "x=41y" { fileinto "encoded_words3"; }
if header :contains "subject" "xAy" { fileinto "encoded_words4"; }
if header :contains "subject" "broken" { fileinto "encoded_words5"; }
if header :is "x-adjacent" "ab" { fileinto "encoded_words6"; }
if header :is "x-adjacent" "a   b" { fileinto "encoded_words7"; }
if header :is "x-not-encoded" "=? not an encoded word ?=" { fileinto "encoded_words8"; }
if header :contains "from" "François Dupont" { fileinto "encoded_words9"; }
if header :contains "from" "FrançoisDupont" { fileinto "encoded_words10"; }
if address :is "to" "andre@example.fr" { fileinto "encoded_words11"; }
if header :contains "to" "André" { fileinto "encoded_words12"; }
if body :contains "kiwi" { fileinto "encoded_words13"; }
if body :contains "mango" { fileinto "encoded_words14"; }
if body :contains "naïve" { fileinto "encoded_words15"; }
if body :contains "wordjoined" { fileinto "encoded_words16"; }
if body :raw :contains "QmFzZTY0" { fileinto "encoded_words17"; }
if body :content "text/plain" :contains "mango" { fileinto "encoded_words18"; }
