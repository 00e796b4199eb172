"""What every command shares: ``-f`` loading, common options, diagnostics, exit codes, consoles.

Exit codes follow the convention of kubeconform/conftest: 0 success, 1 the answer is "no"
(denied, mismatches; only when asked with ``--exit-code`` for ``explain``), 2 the input could
not be used (and click's own usage errors are 2 too). Diagnostics go to stderr as
``file:line: severity: field: message``, so editors and CI annotate the right line; a command
never shows a traceback for bad input.

Without ``-f``, commands that take manifests read a live cluster instead, with kubectl's
``--kubeconfig``, ``--context``, ``-n`` and ``-A`` (:func:`cluster_options`): each resource is
listed once through ``kubeapi.snapshot``, the agent's own reading. The Kubernetes client is
imported only then; rich, YAML and the manifest reader are imported where they are used, so
that ``--version`` and shell completion do not pay for them.

Human output is rich; rich already drops colour when ``NO_COLOR`` is set or stdout is not a
terminal. Machine output (JSON, YAML, CSV) never goes through rich.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from policyctl.cli.completion import complete_namespace, complete_path
from policyctl.policy.diagnostics import Diagnostic, InputError, PolicyctlError, Severity, has_errors
from policyctl.manifests.inputlimits import DEFAULT_LIMITS, MIB, InputLimits
from policyctl.policy.model import Family, Protocol
from policyctl.policy.cluster import Cluster

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_NO = 1
EXIT_INPUT = 2

F = TypeVar("F", bound=Callable[..., Any])


def filename_option(function: F) -> F:
    """``-f`` and the flags that read a live cluster instead (:func:`cluster_options`)."""
    function = cluster_options(function)
    return click.option(
        "-f",
        "--filename",
        "filenames",
        multiple=True,
        metavar="PATH",
        shell_complete=complete_path,
        help="Manifest file, directory (read recursively, *.yaml/*.yml/*.json) or '-' for "
        "stdin. Repeatable. Namespaces, Pods, workloads (Deployment, StatefulSet, DaemonSet, "
        "...; each stands for one pod), Nodes, NetworkPolicies, ClusterNetworkPolicies, "
        "AdminNetworkPolicies and BaselineAdminNetworkPolicies are read; other kinds are counted, "
        "skipped and reported on stderr. Without -f, the objects are read from the cluster of the current "
        "kubeconfig context (see --kubeconfig, --context, -n, -A).",
    )(function)


_LIVE = "policyctl.live-cluster"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(_LIVE, {})[param.name] = value
    return value


def cluster_options(function: F) -> F:
    """``--kubeconfig``, ``--context`` and ``-A``, as kubectl spells them; their values are
    kept on the click context for :func:`load_cluster`, so commands need no parameters."""
    options = (
        click.option("--kubeconfig", metavar="FILE", expose_value=False, is_eager=True, callback=_remember,
                     shell_complete=complete_path,
                     help="Kubeconfig to read the cluster with (default: $KUBECONFIG, "
                     "~/.kube/config, or the pod's service account)."),
        click.option("--context", metavar="NAME", expose_value=False, is_eager=True, callback=_remember,
                     help="Kubeconfig context (default: its current-context)."),
        click.option("-A", "--all-namespaces", "all_namespaces", is_flag=True, expose_value=False,
                     is_eager=True, callback=_remember,
                     help="Read pods and policies of every namespace (default: those of -n, or "
                     "of the context's namespace)."),
    )  # fmt: skip
    for option in reversed(options):
        function = option(function)
    return function


def _context_namespace(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Without ``-n``, a command that reads a live cluster defaults to the context's namespace,
    as kubectl does; with manifests the default stays ``default``. Shell completion (resilient
    parsing) never reaches a cluster."""
    live = ctx.meta.get(_LIVE)
    source = ctx.get_parameter_source(param.name or "")
    if live is None or source is not click.core.ParameterSource.DEFAULT or ctx.resilient_parsing:
        return value
    if ctx.params.get("filenames") or ctx.params.get("paths") or "filenames" not in ctx.params:
        return value
    from policyctl.kubeapi.config import context_namespace

    return context_namespace(kubeconfig=live.get("kubeconfig"), context=live.get("context")) or value


def namespace_option(function: F) -> F:
    return click.option(
        "-n",
        "--namespace",
        default="default",
        callback=_context_namespace,
        shell_complete=complete_namespace,
        help="Namespace for objects without metadata.namespace and for pod names given "
        "without 'namespace/'; reading a cluster, the namespace whose pods and policies are "
        "read. Default: 'default', or the kubeconfig context's namespace when reading a cluster.",
    )(function)


def family_option(function: F) -> F:
    return click.option(
        "--family",
        type=click.Choice([f.value for f in Family], case_sensitive=False),
        default=None,
        help="IP family of the connection (dual-stack policy is decided per family). "
        "Default: IPv4, or IPv6 when the ends only have IPv6 addresses.",
    )(function)


IDENTITY_MARK_HELP = (
    "The packet-mark bits that carry peer identities while a new connection is decided, so that "
    "pod events cost the kernel a plain set update (a mask of two or more bits; every packet "
    "leaves with the mark it came with), or 'none' for peer maps that jump. Default: 0xffff0000. "
    "See docs/ruleset.md."
)


def parse_identity_mark(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """The ``--identity-mark`` mask as an integer, checked as the compiler will use it: the
    default mask when not given, None for ``none``."""
    from policyctl.compiler.markedpeers import DEFAULT_MASK, NO_MARK, IdentityMark

    if value is None:
        return DEFAULT_MASK
    if value == NO_MARK:
        return None
    try:
        return IdentityMark.parse(value).mask
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def identity_mark_option(function: F) -> F:
    return click.option(
        "--identity-mark",
        metavar="MASK|none",
        default=None,
        callback=parse_identity_mark,
        help=IDENTITY_MARK_HELP,
    )(function)


def output_option(choices: Sequence[str], *, versioned: bool = True) -> Callable[[F], F]:
    """``-o``; ``versioned``: the JSON/YAML documents carry a ``schema_version``."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=_output_help(choices, versioned=versioned),
    )


def _output_help(choices: Sequence[str], *, versioned: bool) -> str:
    """Name only the machine formats the command has: a help that offers YAML where there is
    none sends users to an error."""
    machine = [name.upper() for name in ("json", "yaml") if name in choices]
    if not machine:
        return "Output format."
    one = len(machine) == 1
    text = f"Output format. {'/'.join(machine)} {'is' if one else 'are'} plain and sorted"
    return text + (f" and {'carries' if one else 'carry'} a schema_version." if versioned else ".")


class PortType(click.ParamType):
    """``80``, ``80/TCP``, ``53/udp``: a port number and a protocol (default TCP, as the API)."""

    name = "PORT[/PROTOCOL]"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, Protocol]:
        if isinstance(value, tuple):
            return value
        number, _, protocol = str(value).partition("/")
        try:
            port = int(number)
        except ValueError:
            self.fail(f"{value!r}: the port must be a number, e.g. 80/TCP", param, ctx)
        if not 1 <= port <= 65535:
            self.fail(f"{value!r}: the port must be 1-65535", param, ctx)
        try:
            return port, Protocol((protocol or "TCP").upper())
        except ValueError:
            self.fail(f"{value!r}: the protocol must be TCP, UDP or SCTP", param, ctx)


def parse_family(value: str | None) -> Family | None:
    if value is None:
        return None
    return next(f for f in Family if f.value.lower() == value.lower())


def live_requested() -> bool:
    """Whether ``--kubeconfig``, ``--context`` or ``-A`` was given to the current command."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and any(ctx.meta.get(_LIVE, {}).values()))


def load_cluster(filenames: Sequence[str], *, namespace: str) -> Cluster:
    """Load the manifests, or without any read the cluster (:func:`read_live_cluster`);
    warnings go to stderr, errors exit 2 after every one is printed."""
    ctx = click.get_current_context(silent=True)
    live = dict(ctx.meta.get(_LIVE, {})) if ctx is not None else {}
    if not filenames and live:
        return read_live_cluster(
            kubeconfig=live.get("kubeconfig"),
            context=live.get("context"),
            namespace=None if live.get("all_namespaces") else namespace,
        )
    if live.get("kubeconfig") or live.get("context") or live.get("all_namespaces"):
        raise fail("--kubeconfig, --context and -A read a cluster; with -f the manifests are read")
    if not filenames:
        raise fail("no input: give manifests with -f PATH")
    from policyctl.manifests.loader import load

    stdin = sys.stdin if "-" in filenames else None
    result = load(list(filenames), stdin=stdin, default_namespace=namespace, limits=input_limits())
    from policyctl.cli.skipnotes import report_skipped_files

    report_skipped_files(result.skipped_files, listing="policyctl check -v")
    print_diagnostics(result.diagnostics)
    if not result.ok:
        raise click.exceptions.Exit(EXIT_INPUT)
    report_skipped(result.skipped)
    return result.cluster


_SKIPPED = "policyctl.skipped-kinds"


def report_skipped(skipped: Mapping[str, int]) -> None:
    """Say on stderr which kinds were read and not understood (never silently ignored), and
    keep the counts for the JSON document (:func:`skipped_kinds`)."""
    if not skipped:
        return
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.find_root().meta[_SKIPPED] = dict(skipped)
    listed = ", ".join(f"{kind} ({count})" for kind, count in sorted(skipped.items()))
    click.echo(f"note: skipped {sum(skipped.values())} object(s) of kinds policyctl does not read: {listed}", err=True)


def skipped_kinds() -> dict[str, int]:
    """Kind -> count of the objects the current command read and skipped."""
    ctx = click.get_current_context(silent=True)
    return dict(ctx.find_root().meta.get(_SKIPPED, {})) if ctx is not None else {}


_LIMITS = "policyctl.input-limits"
_SIZE_UNITS = {"": 1, "K": 2**10, "KI": 2**10, "M": MIB, "MI": MIB, "G": 2**30, "GI": 2**30}


class ByteSize(click.ParamType):
    """``1048576``, ``512K``, ``256M``, ``1G`` (binary units; ``MiB`` and ``MB`` are the same)."""

    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B")
        digits = text.rstrip("KMGI")
        unit = text[len(digits):]
        if not digits.isdigit() or unit not in _SIZE_UNITS or int(digits) < 1:
            self.fail(f"{value!r}: expected a size such as 1048576, 512K, 256M or 1G", param, ctx)
        return int(digits) * _SIZE_UNITS[unit]


def input_limit_options(function: F) -> F:
    """``--max-file-size``, ``--max-documents``, ``--max-depth`` and ``--max-number-digits``
    (each also read from ``POLICYCTL_MAX_*``), kept for :func:`input_limits`."""
    defaults = DEFAULT_LIMITS
    options = (
        click.option("--max-file-size", type=ByteSize(), envvar="POLICYCTL_MAX_FILE_SIZE",
                     default=defaults.max_file_bytes, show_default=f"{defaults.max_file_bytes // MIB}M",
                     help="Largest manifest file (or standard input) read. Env: POLICYCTL_MAX_FILE_SIZE."),
        click.option("--max-documents", type=click.IntRange(min=1), envvar="POLICYCTL_MAX_DOCUMENTS",
                     default=defaults.max_documents, show_default=True,
                     help="Most YAML documents read from one file. Env: POLICYCTL_MAX_DOCUMENTS."),
        click.option("--max-depth", type=click.IntRange(1, 1000), envvar="POLICYCTL_MAX_DEPTH",
                     default=defaults.max_depth, show_default=True,
                     help="Deepest nesting of maps and lists in a document. Env: POLICYCTL_MAX_DEPTH."),
        click.option("--max-number-digits", type=click.IntRange(min=20), envvar="POLICYCTL_MAX_NUMBER_DIGITS",
                     default=defaults.max_number_digits, show_default=True,
                     help="Longest unquoted number read. Env: POLICYCTL_MAX_NUMBER_DIGITS."),
    )  # fmt: skip
    for option in reversed(options):
        function = option(function)
    return function


def keep_input_limits(ctx: click.Context, *, max_file_size: int, max_documents: int, max_depth: int,
                      max_number_digits: int) -> None:  # fmt: skip
    """Remember the limits given to the command group for every command that reads input."""
    ctx.meta[_LIMITS] = InputLimits(max_file_size, max_documents, max_depth, max_number_digits)


def input_limits() -> InputLimits:
    """The limits of the current command (the defaults when none were given)."""
    ctx = click.get_current_context(silent=True)
    limits = ctx.meta.get(_LIMITS) if ctx is not None else None
    return limits if isinstance(limits, InputLimits) else DEFAULT_LIMITS


def read_live_cluster(*, kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
    """List the cluster once (``namespace`` None: all namespaces) through the same reading as
    the agent's; a missing kubeconfig, a refused list or an unreachable server exits 2."""
    from policyctl.kubeapi.config import available, connect
    from policyctl.kubeapi.snapshot import read_cluster

    if not available(kubeconfig, context):
        raise fail("no input: give manifests with -f PATH, or a cluster with --kubeconfig/--context "
                   "(or set KUBECONFIG, or create ~/.kube/config)")  # fmt: skip
    with input_errors():
        client = connect(kubeconfig=kubeconfig, context=context)
        try:
            snapshot = read_cluster(client.api, namespace=namespace)
        finally:
            client.api.close()
    print_diagnostics(snapshot.diagnostics)
    if has_errors(snapshot.diagnostics):
        raise click.exceptions.Exit(EXIT_INPUT)
    return snapshot.cluster


def print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in sorted(diagnostics):
        if diagnostic.severity is not Severity.INFO:
            click.echo(str(diagnostic), err=True)


def fail(message: str) -> click.exceptions.Exit:
    """Print ``error: message`` to stderr; the caller raises the returned exit (code 2)."""
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(EXIT_INPUT)


@contextmanager
def input_errors() -> Iterator[None]:
    """Turn the errors policyctl raises on purpose into messages and exit 2."""
    try:
        yield
    except InputError as error:
        print_diagnostics(error.diagnostics)
        raise click.exceptions.Exit(EXIT_INPUT) from None
    except PolicyctlError as error:
        raise fail(str(error)) from None


def console() -> Console:
    """A console for human output. Colour only on a terminal and without ``NO_COLOR``; when
    piped, lines are as wide as ``COLUMNS`` (default 120) instead of rich's 80."""
    from rich.console import Console

    stream = sys.stdout
    terminal = stream.isatty()
    width = None if terminal else int(os.environ.get("COLUMNS", "120") or 120)
    return Console(
        file=stream,
        width=width,
        no_color=bool(os.environ.get("NO_COLOR")) or not terminal,
        highlight=False,
        soft_wrap=False,
    )


def emit_document(document: Any, output: str) -> None:
    """JSON or YAML, sorted keys, newline-terminated: byte-stable for scripts and diffs. A
    document (a map) also lists the kinds skipped while reading (``skipped_kinds``)."""
    skipped = skipped_kinds()
    if skipped and isinstance(document, dict):
        document = {**document, "skipped_kinds": skipped}
    if output == "json":
        click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        import yaml

        click.echo(yaml.safe_dump(document, sort_keys=True, allow_unicode=True), nl=False)
