require ["copy","fileinto"];
fileinto :copy "copied";
redirect :copy "cc@example.org";
if exists "list-id" { fileinto "lists"; }
