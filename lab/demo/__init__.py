"""The lab demo: bring up the embedded lab, run the main job for store s001, check it and summarize.

`python -m lab.demo up|down|status` (what `make demo` and `make demo-down` run).
"""
