require /* inline */ "fileinto" /* again */;
# hash
if /* c */ true /* d */ { /* e */ fileinto /* f */ "x" /* g */ ; }
# trailing comment without newline