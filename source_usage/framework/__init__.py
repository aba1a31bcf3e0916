"""The machinery under every vendor's streams: paging, retries, budgets, state, validation."""
