require ["include","fileinto"];
include :global "admin";
fileinto "user";
