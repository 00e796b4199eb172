"""The compiler: a cluster and a node in, that node's nftables ruleset out, as pure data.

Identities group pods that no selector tells apart, so the ruleset grows with equivalence
classes, not with pairs of pods; the label-selector graph (networkx) records which selector
picks which identity. Rules are decided by the matchers of ``policy`` (the same ones the
oracle, ``policy.semantics``, calls), so the compiled engine can be tested for equality with it.
No I/O: ``enforcer`` applies what this produces, ``docs/ruleset.md`` describes its layout.
"""
