require ["mailbox","fileinto"];
fileinto :create "Created";
if mailboxexists "INBOX" { fileinto "inbox-exists"; }
