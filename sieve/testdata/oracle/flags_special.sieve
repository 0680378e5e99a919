require ["imap4flags","fileinto"];
addflag ["\\Recent", "\\Bogus", "\\seen", "\\SEEN", "(paren", "ok"];
fileinto "specials";
setflag "";
fileinto "emptied";
addflag "\\Answered \\Draft";
removeflag "\\DRAFT";
keep;
