stop;
