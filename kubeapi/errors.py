"""Errors of the API edge, below :class:`~policy.diagnostics.PolicyctlError` so the CLI shows
their message and exits 2 without a traceback::

    PolicyctlError
    └── KubeApiError
        ├── ConfigError     no usable kubeconfig, unknown context, bad in-cluster setup
        └── ReadError       the API server refused or failed a read (names the resource)
"""

from __future__ import annotations

from policyctl.policy.diagnostics import PolicyctlError


class KubeApiError(PolicyctlError):
    """Base of the errors raised while talking to a Kubernetes API server."""


class ConfigError(KubeApiError):
    """The client configuration cannot be used; the message says which file or context."""


class ReadError(KubeApiError):
    """A list or get failed; ``status`` is the HTTP status (0 when none was received)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status
