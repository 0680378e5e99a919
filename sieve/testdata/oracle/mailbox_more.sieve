require ["mailbox","fileinto"];
if mailboxexists "Work" { fileinto "work-exists"; }
if mailboxexists ["Work","Lists"] { fileinto "both"; }
if mailboxexists ["Work","Nope"] { fileinto "nope"; }
fileinto :create "Lists";
