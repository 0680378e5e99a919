require ["fileinto","copy"]; if exists "list-id" { fileinto :copy "x"; } keep;
