"""The Kubernetes API edge: client configuration, list/watch reflectors, and slim projections
of API objects into the policy model."""
