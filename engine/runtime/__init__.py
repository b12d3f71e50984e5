"""What the service and analytics processes share at run time: published files, the cycle status, keyed
pseudonyms, structured logs, the site PostgreSQL's URL.
"""
