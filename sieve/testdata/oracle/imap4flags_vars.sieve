require ["imap4flags","fileinto","variables"];
setflag "myflags" "one two";
addflag "myflags" "three";
removeflag "myflags" "one";
if hasflag :is "myflags" "two" { fileinto "two"; }
if hasflag :is "myflags" "one" { fileinto "one"; }
if string :is "${myflags}" "two three" { fileinto "str"; }
keep :flags "${myflags}";
