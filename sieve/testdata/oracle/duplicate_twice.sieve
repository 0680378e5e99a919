require ["duplicate","fileinto"];
if duplicate { fileinto "d1"; }
if duplicate { fileinto "d2"; }
if duplicate :handle "x" { fileinto "d3"; }
if duplicate :header "x-nonexistent" { fileinto "d4"; }
if duplicate :uniqueid "" { fileinto "d5"; }
