require ["include","fileinto"];
fileinto "in-ret";
return;
fileinto "after-return-in-ret";
