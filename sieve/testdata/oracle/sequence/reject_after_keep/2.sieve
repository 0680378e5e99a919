require "reject"; reject "no";
