"""pgx-loop's engine: genotype -> phenotype -> matching rule -> card. Pure Python: no web, no database."""
