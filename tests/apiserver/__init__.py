"""A local Kubernetes API server for tests: the list/watch wire protocol on 127.0.0.1.

See :mod:`tests.apiserver.server`.
"""

from tests.apiserver.server import FakeApiServer, RequestRecord

__all__ = ["FakeApiServer", "RequestRecord"]
