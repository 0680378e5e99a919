require ["fileinto", "date", "relational", "comparator-i;ascii-numeric"];
if date :is "date" "year" "2026" { fileinto "date0"; }
if date :originalzone :is "date" "hour" "09" { fileinto "date1"; }
if date :is "date" "hour" "08" { fileinto "date2"; }
if date :zone "+0000" :is "date" "date" "2026-12-01" { fileinto "date3"; }
if date :originalzone :is "date" "zone" "+0100" { fileinto "date4"; }
if date :zone "-0500" :is "date" "time" "03:59:00" { fileinto "date5"; }
if date :is "date" "weekday" "2" { fileinto "date6"; }
if date :is "date" "julian" "61375" { fileinto "date7"; }
if date :originalzone :is "date" "iso8601" "2026-12-01T09:59:00+01:00" { fileinto "date8"; }
if date :originalzone :is "date" "std11" "Tue, 01 Dec 2026 09:59:00 +0100" { fileinto "date9"; }
if date :value "ge" :comparator "i;ascii-numeric" "date" "month" "11" { fileinto "date10"; }
if date :is "received" "day" "01" { fileinto "date11"; }
if date :matches "date" "date" "*" { fileinto "date12"; }
if currentdate :value "ge" :comparator "i;ascii-numeric" "year" "2020" { fileinto "date13"; }
if currentdate :zone "+0000" :matches "iso8601" "20*" { fileinto "date14"; }
if date :originalzone :is "date" "date" "2026-11-30" { fileinto "date15"; }
if date :is "date" "second" "00" { fileinto "date16"; }
