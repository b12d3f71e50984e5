"""Outcome reports for analysts and the P&T committee: data -> suppressed view -> HTML, CSVs and an index.

``data`` reads the database, ``suppression`` hides small cells, ``view`` builds the tables and
plots shown (``plots``) and the summary (``summary``), ``render`` writes the files.
"""
