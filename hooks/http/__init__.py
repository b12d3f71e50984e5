"""The HTTP layer in front of every endpoint: client deadlines, CORS, response headers, request observability,
the hook endpoints' route class.
"""
