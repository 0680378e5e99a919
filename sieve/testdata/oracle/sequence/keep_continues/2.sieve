require "fileinto"; fileinto "b";
