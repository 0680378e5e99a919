require "imap4flags"; if exists "list-id" { addflag "\\Seen"; }
