require ["vacation","variables"];
if header :matches "subject" "*" { set "s" "${1}"; }
vacation :handle "h1" :subject "Re: ${s}" "Away";