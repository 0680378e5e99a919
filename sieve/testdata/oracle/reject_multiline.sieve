require "reject"; reject text:
Go away,
please.
.
;