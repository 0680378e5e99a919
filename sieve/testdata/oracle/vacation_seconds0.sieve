require ["vacation","vacation-seconds"]; vacation :seconds 0 "zero seconds";
