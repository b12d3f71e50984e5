"""From data to a tier: cohort, Poisson estimate, calibration, sequential looks, policy, strengths."""
