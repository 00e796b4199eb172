"""policyctl: a Kubernetes NetworkPolicy enforcement engine.

The layers sit beside this package in the source tree and are installed under it:
``policyctl.policy`` (model and reference semantics) -> ``policyctl.compiler`` (graph and
nftables rulesets) -> ``policyctl.enforcer`` / ``policyctl.verifier``; ``policyctl.cli`` only
wires them. See docs/architecture.md.
"""

__version__ = "0.1.0"
