require ["fileinto","imap4flags","vacation","copy","envelope","relational","comparator-i;ascii-numeric"];
# rule:[spam]
if anyof (header :contains "x-spam-flag" "YES", header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "10")
{
	fileinto "Junk";
	stop;
}
# rule:[boss]
if allof (address :is "from" "alice@example.com", header :contains "subject" "report")
{
	addflag "\\Flagged";
	fileinto :copy "Work";
}
# rule:[lists]
if exists "list-id"
{
	fileinto "Lists";
	stop;
}
# rule:[away]
if true
{
	vacation :days 5 :addresses ["me@example.net", "me+box@example.net"] :subject "Out of office" "I am out until Monday. For urgent matters call the desk.";
}
