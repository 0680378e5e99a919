require ["variables","fileinto"];
if header :matches "subject" "*" { set "subj" "${0}"; }
if string :matches "${subj}" "* *" { fileinto "first=${1}"; }
set :quotewildcard "lit" "${subj}";
if header :matches "subject" "${lit}" { fileinto "self-match"; }
