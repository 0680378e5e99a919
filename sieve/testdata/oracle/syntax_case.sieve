REQUIRE "fileinto";
IF HEADER :CONTAINS "Subject" "o" { FILEINTO "upper"; }
If Header :Comparator "I;OCTET" :Is "X-Priority" "3" { Fileinto "mixed"; }
