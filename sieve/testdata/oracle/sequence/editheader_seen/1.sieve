require "editheader"; addheader "X-Before" "1";
