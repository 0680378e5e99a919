require ["fileinto", "body"];
if body :contains "report" { fileinto "body_text0"; }
if body :text :contains "shipped" { fileinto "body_text1"; }
if body :contains "Café" { fileinto "body_text2"; }
if body :contains "<b>" { fileinto "body_text3"; }
if body :contains "Track" { fileinto "body_text4"; }
if body :raw :contains "=E9" { fileinto "body_text5"; }
if body :raw :contains "SW52b2ljZ" { fileinto "body_text6"; }
if body :content "application/pdf" :contains "secret token" { fileinto "body_text7"; }
if body :content "text/html" :contains "<b>order</b>" { fileinto "body_text8"; }
if body :content "text/plain" :contains "Tracking: ZX=99" { fileinto "body_text9"; }
if body :contains "preamble" { fileinto "body_text10"; }
if body :content "multipart" :contains "preamble" { fileinto "body_text11"; }
if body :contains "pineapple" { fileinto "body_text12"; }
if body :content "message/rfc822" :contains "inner" { fileinto "body_text13"; }
if body :matches "*quarterly*" { fileinto "body_text14"; }
if body :is "nothing" { fileinto "body_text15"; }
if body :contains "Grüße" { fileinto "body_text16"; }
if body :raw :matches "*Hello there*" { fileinto "body_text17"; }
