require ["fileinto", "reject", "body", "imap4flags", "variables", "editheader", "duplicate"];
if duplicate :seconds 3600 { discard; stop; }
if header :matches "subject" ["*viagra*", "*casino*", "*lottery*"] { discard; stop; }
if body :text :contains ["unsubscribe here", "click below to claim"] {
	addheader "X-Sieve-Spam" "body rule";
	addflag "Junk";
}
if address :domain :is "from" ["shop.example", "lists.example.org"] {
	setflag "\\Seen";
	fileinto "Bulk";
}
if header :contains "from" "MAILER-DAEMON" { fileinto "Bounces"; }
if hasflag "Junk" { fileinto "Junk"; }
