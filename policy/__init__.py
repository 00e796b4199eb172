"""The NetworkPolicy model, the matchers and the reference semantics.

Pure: no I/O, no logging. Manifests are read into this model by ``manifests``. Everything else in
policyctl is tested against ``policy.semantics``.
"""
