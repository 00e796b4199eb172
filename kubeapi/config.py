"""Client configuration, found the way kubectl finds it.

Order: an explicit ``--kubeconfig`` file; else the ``KUBECONFIG`` variable (a list of files
joined by ``:``, merged); else ``~/.kube/config``; else, inside a pod, the service account
(``KUBERNETES_SERVICE_HOST`` and the mounted token). ``--context`` picks a context of the
kubeconfig (default: its ``current-context``). The namespace a command defaults to is the
context's ``namespace`` (``default`` when it has none), or inside a pod the service account's.

The variable and the home directory are read when a function is called, not when the client
is imported (the official client reads ``KUBECONFIG`` once, at import).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from policyctl.kubeapi.errors import ConfigError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True, slots=True)
class ClusterClient:
    """A configured ``ApiClient`` and where it points: the server URL, the context used
    (None in a pod) and the namespace commands default to."""

    api: Any
    server: str
    context: str | None
    namespace: str


def kubeconfig_path(kubeconfig: str | None = None) -> str | None:
    """The kubeconfig file(s) to read, or None when there is none (see module docstring)."""
    if kubeconfig:
        return kubeconfig
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT / "token").is_file()


def available(kubeconfig: str | None = None, context: str | None = None) -> bool:
    """Whether a cluster is asked for (``kubeconfig``/``context`` given) or configured."""
    return bool(kubeconfig or context) or kubeconfig_path() is not None or in_cluster()


def _chosen_context(kubeconfig: str | None, context: str | None) -> tuple[str, dict[str, Any]] | None:
    """The kubeconfig path(s) and the context entry to use; None when there is no kubeconfig
    (then only the in-cluster configuration is left)."""
    path = kubeconfig_path(kubeconfig)
    if path is None:
        return None
    for part in path.split(os.pathsep):
        if part and not Path(part).expanduser().is_file():
            raise ConfigError(f"{part}: kubeconfig file not found")
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
    except (ConfigException, OSError, ValueError) as error:
        raise ConfigError(f"{path}: cannot read kubeconfig: {error}") from None
    chosen = current
    if context is not None:
        chosen = next((c for c in contexts or [] if c.get("name") == context), None)
        if chosen is None:
            names = ", ".join(sorted(str(c.get("name")) for c in contexts or [])) or "none"
            raise ConfigError(f"{path}: context {context!r} not found (contexts: {names})")
    if not chosen:
        raise ConfigError(f"{path}: no current-context; give --context")
    return path, chosen


def _no_kubeconfig(context: str | None) -> ConfigError:
    if context is not None:
        return ConfigError(f"context {context!r} given but there is no kubeconfig")
    return ConfigError("no kubeconfig: give --kubeconfig, set KUBECONFIG or create ~/.kube/config")


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> ClusterClient:
    """An API client for the chosen kubeconfig and context (or the pod's service account).
    Raises :class:`ConfigError` naming the file and context when they cannot be used."""
    found = _chosen_context(kubeconfig, context)
    if found is None:
        if context is None and in_cluster():
            return _in_cluster()
        raise _no_kubeconfig(context)
    path, chosen = found
    try:
        api = config.new_client_from_config(config_file=path, context=chosen["name"])
    except (ConfigException, OSError, ValueError) as error:
        raise ConfigError(f"{path}: context {chosen['name']!r}: {error}") from None
    return ClusterClient(api, api.configuration.host, chosen["name"], _namespace_of(chosen))


def context_namespace(*, kubeconfig: str | None = None, context: str | None = None) -> str | None:
    """The namespace of the chosen context (``default`` when it names none), the service
    account's inside a pod, or None when no configuration can be read (the caller reports
    that when it connects)."""
    try:
        found = _chosen_context(kubeconfig, context)
    except ConfigError:
        return None
    if found is None:
        return _service_account_namespace() if context is None and in_cluster() else None
    return _namespace_of(found[1])


def _namespace_of(context: dict[str, Any]) -> str:
    return str((context.get("context") or {}).get("namespace") or "default")


def _service_account_namespace() -> str:
    namespace_file = SERVICE_ACCOUNT / "namespace"
    text = namespace_file.read_text(encoding="utf-8").strip() if namespace_file.is_file() else ""
    return text or "default"


def _in_cluster() -> ClusterClient:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException as error:
        raise ConfigError(f"in-cluster configuration: {error}") from None
    return ClusterClient(client.ApiClient(configuration), configuration.host, None, _service_account_namespace())
