"""Reports written from runs: the claims of a paper, measured and judged (`sptui report toy-models`)."""
