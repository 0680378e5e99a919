require "fileinto";
if size :over 1k { fileinto "over1k"; }
if size :under 1M { fileinto "under1m"; }
if size :under 1G { fileinto "under1g"; }
if size :over 0 { fileinto "over0"; }
if size :over 512 { fileinto "over512"; }
