require ["regex","variables","fileinto"];
set :quoteregex "q" "a.b*c";
fileinto "${q}";
