"""In-store workload services of the retail.edge collection."""

__version__ = "0.1.0"
