"""The local lab: a cluster of network namespaces where real packets prove enforcement."""
