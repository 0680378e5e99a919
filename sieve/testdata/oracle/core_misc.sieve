require ["fileinto"];
if exists "subject" { fileinto "core_misc0"; }
if exists ["subject","x-priority"] { fileinto "core_misc1"; }
if exists "x-nonexistent" { fileinto "core_misc2"; }
if exists ["subject","x-nonexistent"] { fileinto "core_misc3"; }
if exists "x-empty" { fileinto "core_misc4"; }
if size :over 100 { fileinto "core_misc5"; }
if size :over 1K { fileinto "core_misc6"; }
if size :under 1K { fileinto "core_misc7"; }
if size :under 10 { fileinto "core_misc8"; }
if true { fileinto "core_misc9"; }
if false { fileinto "core_misc10"; }
if not false { fileinto "core_misc11"; }
if allof(true, true) { fileinto "core_misc12"; }
if allof(true, false) { fileinto "core_misc13"; }
if anyof(false, false) { fileinto "core_misc14"; }
if anyof(false, true) { fileinto "core_misc15"; }
if not anyof(exists "x-priority", exists "list-id") { fileinto "core_misc16"; }
if allof(exists "from", not exists "x-nope", anyof(false, header :contains "subject" "o")) { fileinto "core_misc17"; }
