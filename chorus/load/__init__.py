"""`chorus load`: a bounded load generator for the local cluster or a deployment.

plan.py decides (profiles, bounds, allowed targets; pure), stats.py summarises (percentiles,
loss and duplicates; pure), run.py drives the clients and reports, plots.py draws PNGs.
"""
