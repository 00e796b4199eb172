"""Cluster generator and performance suite (``policyctl.bench``); see ``bench/README.md``."""
