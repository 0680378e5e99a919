require ["date", "fileinto", "relational", "comparator-i;ascii-numeric"];
if date :zone "bogus" :value "ge" :comparator "i;ascii-numeric" "date" "year" "2000" { fileinto "bogus-zone"; }
if date :zone "+2500" :is "date" "zone" "+2500" { fileinto "zone-2500"; }
if currentdate :zone "+0130" :matches "zone" "*" { fileinto "cur-zone"; }
