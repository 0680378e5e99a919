require "vacation";
vacation :days 3 :subject "Out of office" :from "Me <me@example.net>" :addresses ["me@example.net","alias@example.net"] "Away";