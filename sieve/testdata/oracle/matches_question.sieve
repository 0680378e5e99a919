require "fileinto";
if header :matches "subject" "h?llo*" { fileinto "matches_edge5"; }
if header :comparator "i;octet" :matches "subject" "h?llo*" { fileinto "matches_edge6"; }
if header :matches "subject" "Gr??e*" { fileinto "matches_edge9"; }
if header :matches "subject" "Gr?e*" { fileinto "matches_edge10"; }
if header :matches "subject" "He?lo*" { fileinto "anchored"; }
