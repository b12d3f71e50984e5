"""For operators and analysts: health and metrics endpoints, hot reload, the served reports."""
