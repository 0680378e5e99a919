require ["imap4flags","fileinto"];
keep :flags "a";
fileinto :flags "b" "INBOX";
fileinto :flags "c" "X";
fileinto :flags "d" "X";
