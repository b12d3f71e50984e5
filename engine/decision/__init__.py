"""Results x orders -> the recommendation that applies and its card: rule files, matching, strengths."""
