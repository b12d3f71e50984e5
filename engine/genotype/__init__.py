"""Genotype -> phenotype: gene files, allele notations, and the CPIC call for each kind of gene."""
