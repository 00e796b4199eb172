"""The verifier: exhaustive proofs over every pod, port, protocol and address.

Questions are answered over the classes of pods, ports and addresses that no rule tells apart,
never pod by pod, so a proof costs what the policies distinguish. Its decisions are the oracle's
(``policy.semantics``) and a property that fails comes with a concrete counterexample. Holds
assertions, queries, semantic diff, redundancy and lint; ``docs/verifier.md`` describes the
classes and the assertions format. No I/O.
"""
