require ["fileinto", "environment", "variables"];
if environment :is "location" "MDA" { fileinto "environment0"; }
if environment :is "phase" "during" { fileinto "environment1"; }
if environment :contains "name" "Sieve" { fileinto "environment2"; }
if environment :is "nonexistent-item" "" { fileinto "environment3"; }
if environment :matches "domain" "*" { fileinto "environment4"; }
