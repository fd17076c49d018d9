"""Lab HQ: a reference implementation of the central stock feed and sales ingest that store services sync with.

Start it with ``python -m lab.hq --host 127.0.0.1 --port N --data-dir DIR``. The interfaces are described in
``docs/hq-interfaces.md``; a retailer puts its ERP behind the same two interfaces.
"""
