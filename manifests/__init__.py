"""Reading Kubernetes manifests into the policy model, as the API server would accept them.

YAML and JSON with file:line provenance, the API server's validation and defaulting of
NetworkPolicy and the cluster-scoped policy kinds, and the reverse writer. Pure: it reads the
files it is given and builds ``policy.model`` values; the semantics never import it.
"""
