"""The rule library as a whole: loading and checking a rules directory, its worked examples and warnings,
comparing it with CPIC, explaining a card.
"""
