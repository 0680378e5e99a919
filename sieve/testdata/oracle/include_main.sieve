require ["include","variables","fileinto"];
global "g";
set "g" "main";
include :personal "sub";
include :once "sub";
include :once "sub";
include :optional "does-not-exist";
fileinto "after-${g}";
