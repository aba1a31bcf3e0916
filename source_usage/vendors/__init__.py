"""One module per vendor: its authentication, errors, rate limits and streams."""
