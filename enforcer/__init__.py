"""The enforcer: applies a compiled ruleset to the kernel through libnftables.

It reads the node's table back from the kernel and diffs it against the ruleset, so every
change is one atomic transaction and a failed step leaves the previous ruleset in place;
connections that the new rules deny are revoked from conntrack. The only layer below the
agent and the lab that touches nftables.
"""
