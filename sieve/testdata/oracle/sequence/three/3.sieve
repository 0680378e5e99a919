require "fileinto"; if header :contains "subject" "o" { fileinto "o"; }
