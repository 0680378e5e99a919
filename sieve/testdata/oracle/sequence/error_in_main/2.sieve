require ["fileinto","copy"]; fileinto :copy "a";
