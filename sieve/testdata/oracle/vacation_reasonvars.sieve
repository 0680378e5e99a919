require ["vacation","variables"];
if header :matches "from" "*" { set "f" "${1}"; }
vacation "Hello ${f}, I am away";