"""The `pgx-loop` command line, which ties the engine, the service and the analytics together."""
