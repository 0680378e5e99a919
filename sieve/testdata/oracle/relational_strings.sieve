require ["relational","fileinto","variables","comparator-i;ascii-numeric"];
if string :value "lt" "abc" "abd" { fileinto "lt"; }
if string :value "gt" :comparator "i;octet" "B" "a" { fileinto "octet-gt"; }
if string :count "eq" ["a","b","c"] "3" { fileinto "count-casemap"; }
if string :count "gt" ["a","b","c"] "10" { fileinto "count-lexical"; }
if string :value "eq" :comparator "i;ascii-numeric" "007" "7" { fileinto "num-eq"; }
if string :value "gt" :comparator "i;ascii-numeric" "abc" "99999" { fileinto "num-inf"; }
if string :value "lt" :comparator "i;ascii-numeric" "12abc" "13" { fileinto "num-prefix"; }
if string :value "eq" :comparator "i;ascii-numeric" "" "0" { fileinto "num-empty"; }
