"""What listing the node's conntrack table costs, the two ways policyctl can list it.

After every change the agent lists the whole conntrack table and re-judges the flows of its
local pods (``enforcer/conntrack.py``, revocation), so the listing's cost is paid by every sync
that changes the ruleset, and it follows the node's tracked flows (closed TCP connections stay
in TIME_WAIT for two minutes), not the change. Measured in a throwaway namespace holding
``--entries`` TCP entries inserted with ``conntrack -I``, each way in the same run:

* ``netlink``: a ctnetlink dump decoded by pyroute2 (:class:`ConntrackNetlink`);
* ``command``: ``conntrack -L -o extended`` per family, its text parsed
  (:class:`ConntrackCommand`), which :class:`ConntrackTool`, what the agent uses, lists with.

Run: ``python -m policyctl.bench.conntrack [--entries 5000] [--samples 5]`` (root, conntrack-tools
and pyroute2). JSON figures on stdout.
"""

from __future__ import annotations

import argparse
import ipaddress
import subprocess
from collections.abc import Callable, Sequence

from policyctl.bench.figures import Figure, print_report, quantile, timed
from policyctl.bench.run import throwaway_netns
from policyctl.enforcer.conntrack import ConntrackCommand, ConntrackNetlink, ConntrackTool, Flow

SOURCES = ipaddress.IPv4Address("10.1.0.0")
DESTINATION = "10.2.0.1"
PARALLEL = 32


def fill(netns: str, entries: int) -> None:
    """``entries`` TCP entries in TIME_WAIT (what probes and short connections leave behind),
    each with its own source address, inserted ``PARALLEL`` commands at a time."""
    running: list[subprocess.Popen[bytes]] = []
    for i in range(entries):
        running.append(subprocess.Popen(
            ["ip", "netns", "exec", netns, "conntrack", "-I", "-p", "tcp", "-s", str(SOURCES + i), "-d", DESTINATION,
             "--sport", str(1024 + i % 60000), "--dport", "80", "--state", "TIME_WAIT", "-t", "600", "-u", "ASSURED"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if len(running) >= PARALLEL:
            for process in running:
                process.wait()
            running = []
    for process in running:
        process.wait()


def measure(entries: int, samples: int) -> list[Figure]:
    with throwaway_netns() as ns:
        fill(ns, entries)
        netlink = ConntrackNetlink(netns=ns)
        tool = ConntrackTool(netns=ns)
        ways: dict[str, Callable[[], tuple[Flow, ...]]] = {
            "netlink": netlink.flows, "command": ConntrackCommand(netns=ns).flows, "tool": tool.flows}
        seconds: dict[str, list[float]] = {way: [] for way in ways}
        listed: dict[str, int] = {}
        for _ in range(samples):
            for way, flows in ways.items():
                spent, found = timed(flows)
                seconds[way].append(spent)
                listed[way] = len(found)
        netlink.close()
        tool.close()
    if len(set(listed.values())) != 1:
        raise RuntimeError(f"the ways listed different numbers of flows: {listed}")
    base = quantile(seconds["netlink"], 0.5)
    detail = f"{listed['netlink']} tracked TCP flows (TIME_WAIT); median of {samples} listings"
    names = {"netlink": "ctnetlink dump decoded by pyroute2", "command": "conntrack -L -o extended, parsed",
             "tool": "ConntrackTool (what the agent uses)"}
    return [
        Figure(f"conntrack.list.{way}", "s", quantile(values, 0.5),
               baseline=None if way == "netlink" else base,
               baseline_name="" if way == "netlink" else "ctnetlink dump decoded by pyroute2, same table, same run",
               detail=f"{names[way]}; {detail}")
        for way, values in seconds.items()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policyctl.bench.conntrack", description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args(argv)
    figures = measure(args.entries, args.samples)
    print_report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
