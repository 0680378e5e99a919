require "fileinto";
if exists "list-id" { fileinto "lists"; stop; }
if header :contains "from" "daemon" { discard; stop; }
fileinto "after";
stop;
fileinto "never";
