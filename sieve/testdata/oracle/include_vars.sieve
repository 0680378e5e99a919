require ["include","variables","fileinto"];
set "local" "main-local";
include "locals";
fileinto "main-sees=${local}";
