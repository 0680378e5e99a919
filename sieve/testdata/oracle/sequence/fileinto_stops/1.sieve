require "fileinto"; fileinto "a";
