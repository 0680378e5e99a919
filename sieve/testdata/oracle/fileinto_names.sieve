require ["fileinto"];
fileinto "INBOX.Sub";
fileinto "inbox";
fileinto "Ünïcødé";
fileinto "a/b";
fileinto "Work";
fileinto "work";
