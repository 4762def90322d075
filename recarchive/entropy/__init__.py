"""Exact entropy models: integer CDF tables built once per model and hashed with it."""
