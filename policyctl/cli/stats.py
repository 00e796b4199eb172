"""``policyctl stats``: the packet counters of our table, per rule and per policy.

Read from the kernel (run it where the table is, e.g. ``ip netns exec NODE_NS``). The JSON
output is plain and sorted with a ``schema_version``; the table output is for people.
"""

from __future__ import annotations

import click

from policyctl.cli.inputs import console, emit_document, fail, input_errors, output_option

SCHEMA_VERSION = 1


@click.command()
@click.option("--table", default="policyctl", show_default=True, help="The inet table to read.")
@output_option(("table", "json"))
def stats(table: str, output: str) -> None:
    """Show how many packets each policy rule allowed, denied or (audit mode) let through."""
    from rich.table import Table

    from policyctl.enforcer.backend import default_backend
    from policyctl.enforcer.stats import policy_counters, rule_counters

    with input_errors():
        listing = default_backend().list_table("inet", table)
        if listing is None:
            raise fail(f"there is no table inet {table} here (nothing enforced yet?)")
        rules = rule_counters(listing, table=table)
        policies = policy_counters(rules)
    if output == "json":
        emit_document(
            {
                "schema_version": SCHEMA_VERSION,
                "table": table,
                "policies": [
                    {"policy": p.policy, "allow": p.allow, "deny": p.deny, "audit": p.audit} for p in policies
                ],
                "rules": [
                    {"chain": r.chain, "position": r.position, "comment": r.comment, "action": r.action,
                     "packets": r.packets, "bytes": r.bytes}
                    for r in rules
                ],
            },
            "json",
        )
        return
    out = console()
    by_policy = Table("policy", "allowed", "denied", "audited (let through)", title=f"table inet {table}")
    for p in policies:
        by_policy.add_row(p.policy, str(p.allow), str(p.deny), str(p.audit))
    out.print(by_policy)
    by_rule = Table("chain", "#", "action", "packets", "bytes", "comment")
    for r in rules:
        by_rule.add_row(r.chain, str(r.position), r.action, str(r.packets), str(r.bytes), r.comment)
    out.print(by_rule)
