require "fileinto"; if exists "x-before" { fileinto "saw-edit"; }
