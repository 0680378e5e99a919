require ["duplicate","fileinto"];
if duplicate { fileinto "dup"; }
if duplicate :header "subject" :handle "subj" { fileinto "dup-subject"; }
if duplicate :uniqueid "fixed" :seconds 60 { fileinto "dup-fixed"; }
keep;
