require ["fileinto"];
if header :contains "subject" text:
report
.
{ fileinto "multi"; }
