"""A synthetic OMOP cohort with known truth, and the validity study run on it."""
