require "FileInto"; keep;
