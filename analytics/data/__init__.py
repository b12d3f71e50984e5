"""The site's data in DuckDB: the OMOP import, lab genotypes, opt-outs, the service's events, products."""
