"""Errors of the API edge, below :class:`~policy.diagnostics.PolicyctlError` so the CLI shows
their message and exits 2 without a traceback::

    PolicyctlError
    └── KubeApiError
        ├── ConfigError         no usable kubeconfig, unknown context, bad in-cluster setup
        ├── ReadError           the API server refused or failed a read (names the resource)
        ├── MalformedResponse   a 200 answer that is not what the API sends (not JSON, not a
        │                       list, a truncated body, an event without an object)
        └── DeadlineExceeded    a response still unread when its deadline passed (a server
                                that trickles bytes, which a read timeout never notices)
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


class MalformedResponse(KubeApiError):
    """The API server (or a proxy in front of it) answered with something a list or watch
    cannot be read from. Nothing of that answer is used: what it would have changed is
    unknown, so the reader lists again."""


class DeadlineExceeded(KubeApiError):
    """A response was cut off because it was not read whole within its deadline."""
