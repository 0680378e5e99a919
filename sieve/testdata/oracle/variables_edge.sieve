require ["variables","fileinto"];
set "Name" "v";
fileinto "${name}${NAME}";
set "a.b" "dotted";
set "x" "${hex:41}";
fileinto "[${x}]";
set "long" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
set :length "n" "${long}${long}${long}";
fileinto "n=${n}";
set :lower :upperfirst "c" "aBC dEF";
set :quotewildcard :upper "q" "x*y?";
fileinto "${c}|${q}";
set :length "u" "Grüße";
fileinto "u=${u}";
if string :matches " ${c} " " * * " { fileinto "s=${1}/${2}"; }
if string :is "" "" { fileinto "empty-is"; }
if string :contains "abc" "" { fileinto "empty-contains"; }
