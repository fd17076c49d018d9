"""Offline-first POS cache of a store: a local sales API with exactly-once sync of its outbox to HQ.

``retail_edge.pos.app`` serves registers and kiosks, ``retail_edge.pos.sync`` is the agent that delivers sales and
replicates the catalog and cashiers, ``retail_edge.pos.storage`` is the SQLite layer both share.
"""
