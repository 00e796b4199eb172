"""Run one help example that serves until stopped (``agent``), in the network namespace this
process was started in (``unshare --net``), against a test API server serving ``cluster.yaml``.

Prints ``exited N`` when the example ended by itself within :data:`STARTUP` seconds, else
stops it with SIGINT (Ctrl-C) and prints ``stopped N``. Usage: ``python -m tests.cli.daemonexample CMD``
from the example's working directory, with ``HOME`` where ``~/.kube/config`` is to be written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tests.apiserver.server import FakeApiServer

STARTUP = 4.0


def main(command: str) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with FakeApiServer() as server:
        for document in yaml.safe_load_all(Path("cluster.yaml").read_text(encoding="utf-8")):
            if document and document.get("kind") in ("Namespace", "Pod", "Node", "NetworkPolicy"):
                server.create(document)
        home = Path(os.environ["HOME"])
        (home / ".kube").mkdir(parents=True, exist_ok=True)
        server.write_kubeconfig(home / ".kube" / "config", context="prod")
        process = subprocess.Popen(["bash", "-c", command])
        try:
            code = process.wait(timeout=STARTUP)
            print(f"exited {code}")
            return 0
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            print(f"stopped {process.wait(timeout=30)}")
            return 0
        finally:
            process.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
