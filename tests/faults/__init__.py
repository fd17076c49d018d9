"""Fault tests: runs that fail where something breaks, and reruns that converge once it is fixed."""
