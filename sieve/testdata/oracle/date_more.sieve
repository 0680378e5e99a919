require ["fileinto", "date", "relational", "comparator-i;ascii-numeric", "variables"];
if date :originalzone :is "date" "year" "2026" { fileinto "date_more0"; }
if date :zone "+1400" :is "date" "day" "02" { fileinto "date_more1"; }
if date :zone "-1200" :value "le" :comparator "i;ascii-numeric" "date" "day" "30" { fileinto "date_more2"; }
if date :is "x-nonexistent" "year" "2026" { fileinto "date_more3"; }
if date :matches "date" "zone" "*" { fileinto "date_more4"; }
if date :originalzone :is "date" "zone" "-0800" { fileinto "date_more5"; }
if date :originalzone :is "date" "weekday" "1" { fileinto "date_more6"; }
if date :is "date" "fortnight" "1" { fileinto "date_more7"; }
if date :originalzone :contains "date" "iso8601" "T" { fileinto "date_more8"; }
if date :originalzone :matches "date" "time" "2?:*" { fileinto "date_more9"; }
