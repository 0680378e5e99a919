require ["fileinto"];
keep;
fileinto "INBOX";
fileinto "a";
fileinto "a";
redirect "x@example.org";
redirect "x@example.org";
redirect "y@example.org";
keep;
