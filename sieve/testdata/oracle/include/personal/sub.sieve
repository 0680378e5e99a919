require ["include","variables","fileinto"];
global "g";
fileinto "sub-saw-${g}";
set "g" "sub";
