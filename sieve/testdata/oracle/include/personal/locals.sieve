require ["variables","fileinto"];
fileinto "inc-sees=${local}";
set "local" "inc-local";
