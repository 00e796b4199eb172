"""The NetworkPolicy model, manifest loading and validation, and the reference semantics.

Pure: no I/O beyond reading the manifests it is asked to load, no logging. Everything else in
policyctl is tested against ``policy.semantics``.
"""
