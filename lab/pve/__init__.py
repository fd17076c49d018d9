"""A Proxmox VE API double: PVE's HTTPS API for LXC containers, nodes, storages and tasks, on 127.0.0.1.

Start it with `python -m lab.pve serve --config CONFIG.yml --state-dir DIR`; see docs/pve-double.md.
"""
