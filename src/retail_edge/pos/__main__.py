"""``python -m retail_edge.pos [ARGS]`` runs the API server; ``python -m retail_edge.pos sync [ARGS]`` the agent."""

import sys

from retail_edge.pos.cli import serve_main, sync_main

if len(sys.argv) > 1 and sys.argv[1] == "sync":
    sync_main(sys.argv[2:])
else:
    serve_main(sys.argv[1:])
