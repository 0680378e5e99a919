require "fileinto"; fileinto "user";
