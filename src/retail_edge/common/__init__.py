"""Helpers shared by the retail.edge services: structured logging, settings loading, HTTP and metrics glue."""
