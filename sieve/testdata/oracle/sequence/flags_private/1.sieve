require "imap4flags"; addflag "x";
