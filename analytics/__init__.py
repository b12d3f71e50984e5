"""The learning loop: the site's own outcomes in DuckDB, re-estimated on a schedule."""
