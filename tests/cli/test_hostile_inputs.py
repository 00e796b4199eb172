"""Hostile and unlucky inputs end in a located error and exit 2; bugs end in exit 3 and
Ctrl-C in 130, never in a traceback or in 1 (this CLI's "the answer is no")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from policyctl.cli import failures
from tests.cli.conftest import write

POLICYCTL = [sys.executable, "-m", "policyctl"]

HOSTILE = [
    # (name, file content, expected "line: error: field" prefix, code)
    ("node-address-not-a-string",
     b"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {addresses: [{type: InternalIP, address: 5}]}\n",
     "4: error: status.addresses[0].address:", "needs-quotes"),
    ("number-of-5000-digits",
     b"kind: Pod\nmetadata: {name: a}\nspec: {containers: [{ports: [{containerPort: " + b"9" * 5000 + b"}]}]}\n",
     "3: error: spec.containers[0].ports[0].containerPort:", "number-too-long"),
    ("maps-nested-495-deep",
     b"kind: Pod\nmetadata: " + b"{a: " * 495 + b"1" + b"}" * 495 + b"\n",
     "2: error: metadata.a.a.a.a.a.a.a.", "yaml-too-deep"),
    ("nul-byte", b"kind: Pod\nmetadata:\n  name: a\x00b\n", "3: error: (file):", "unreadable-file"),
    ("latin-1", b"kind: Pod\nmetadata:\n  name: caf\xe9\n", "3: error: (file):", "unreadable-file"),
    ("control-character", b"kind: Pod\nmetadata:\n  name: a\x07b\n", "3: error: metadata.name:", "yaml-syntax"),
    ("unclosed-flow-at-the-end", b"kind: Pod\nmetadata: {name: [\n", "2: error: metadata.name:", "yaml-syntax"),
    ("binary", bytes(range(256)) * 4, "1: error: (file):", "unreadable-file"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "prefix", "code"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_file_is_a_located_error_and_exit_2(run, tmp_path, data, prefix, code):
    path = tmp_path / "m.yaml"
    path.write_bytes(data)
    for command in ("check", "matrix"):
        result = run(command, "-f", str(path))
        output = result.stdout + result.stderr
        assert result.exit_code == 2, output
        assert f"{path}:{prefix}" in output and f"[{code}]" in output, output
        assert "Traceback" not in output


def test_utf16_with_a_byte_order_mark_is_read(run, tmp_path):
    path = tmp_path / "ns.yaml"
    path.write_bytes("apiVersion: v1\nkind: Namespace\nmetadata: {name: é}\n".encode("utf-16"))
    result = run("check", "-f", str(path))
    assert "metadata.name" in result.stdout and "unreadable-file" not in result.stdout


def test_limits_are_options_of_the_group_and_environment_variables(run, tmp_path, monkeypatch):
    path = write(tmp_path, "m.yaml", "a: 1\n---\nb: 2\n---\nc: 3\n")
    result = run("--max-documents", "2", "check", "-f", path)
    assert result.exit_code == 2 and f"{path}:4: error: (document): more than 2 YAML documents" in result.stdout
    monkeypatch.setenv("POLICYCTL_MAX_FILE_SIZE", "1K")
    big = write(tmp_path, "big.yaml", "a: " + "x" * 2000 + "\n")
    result = run("check", "-f", big)
    assert result.exit_code == 2 and f"{big}:1: error: (file): larger than 1,024 bytes" in result.stdout


def test_an_internal_error_is_one_line_and_exit_3(run, tmp_path, monkeypatch):
    import policyctl.cli.check as check

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(check, "lint", broken)
    monkeypatch.delenv(failures.DEBUG_VARIABLE, raising=False)
    result = run("check", "-f", write(tmp_path, "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"))
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [failures.internal_error_line(ZeroDivisionError("division by zero"))]
    monkeypatch.setenv(failures.DEBUG_VARIABLE, "1")
    result = run("check", "-f", str(tmp_path / "ns.yaml"))
    assert result.exit_code == 3 and "Traceback" in result.stderr


def _process(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    command = [*POLICYCTL, *args]
    options = {"capture_output": True, "text": True, "timeout": 120, "check": False, **kwargs}
    return subprocess.run(command, **options)  # type: ignore[call-overload]


def test_real_processes_on_a_device_and_a_missing_file_exit_2_at_line_1():
    for path in ("/dev/zero", "/nonexistent/m.yaml"):
        for command in ("check", "matrix"):
            result = _process(command, "-f", path)
            output = result.stdout + result.stderr
            assert result.returncode == 2, output
            assert f"{path}:1: error: (file):" in output and "Traceback" not in output


def test_real_process_on_a_mutated_manifest_exits_2(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "kind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: 5\n"
        "  ingress: [{from: [{ipBlock: {cidr: 7}}]}]\n"
    )
    result = _process("matrix", "-f", str(path))
    assert result.returncode == 2 and f"{path}:4: error: spec.podSelector:" in result.stderr, result.stderr


def _wait_until_reading_stdin(pid: int) -> None:
    """Until the process sits in read(0, ...) (x86-64 syscall 0 on fd 0): its imports are done."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
        if fields[:2] == ["0", "0x0"]:
            return
        time.sleep(0.05)
    raise AssertionError("the process never read its standard input")


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs /proc/PID/syscall (Linux)")
def test_ctrl_c_exits_130_without_a_traceback():
    process = subprocess.Popen(
        [*POLICYCTL, "check", "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        _wait_until_reading_stdin(process.pid)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
