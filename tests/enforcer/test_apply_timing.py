"""An apply says how much of its time the backend took to send the transaction (the kernel's
commit), apart from reading and planning, on both ways a transaction is sent."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from policyctl.compiler.delta import diff
from policyctl.compiler.render_json import to_document
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.nfmessages import Batch
from tests.agent.clock import FakeClock
from tests.enforcer.test_delta import BASE, PEERS, address, changed

LISTING, HANDLE, RUN, COMMIT = 0.5, 0.125, 0.25, 0.0625
MORE_PEERS = changed(sets=(BASE.sets[0], dataclasses.replace(PEERS, elements=(*PEERS.elements, address("10.0.0.3")))))


class SlowBackend:
    """A table that exists once something was run; every call takes its time on ``clock``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.created = False
        self.sent: list[str] = []

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.clock.advance(RUN)
        self.created = True
        self.sent.append("json")
        return {"nftables": []}

    def list_table(self, family: str, name: str) -> dict[str, Any] | None:
        self.clock.advance(LISTING)
        return None

    def check(self, payload: dict[str, Any]) -> None:
        self.clock.advance(RUN)

    def table_handle(self, family: str, name: str) -> int | None:
        self.clock.advance(HANDLE)
        return 7 if self.created else None


class SlowBatchBackend(SlowBackend):
    def commit_batch(self, batch: Batch) -> None:
        self.clock.advance(COMMIT)
        self.sent.append("batch")


@pytest.mark.parametrize(
    ("backend_type", "delta_sent_as", "delta_kernel"),
    [
        pytest.param(SlowBackend, "json", RUN, id="libnftables-json"),
        pytest.param(SlowBatchBackend, "batch", COMMIT, id="own-batch"),
    ],
)
def test_kernel_seconds_count_the_send_alone(backend_type: type[SlowBackend], delta_sent_as: str,
                                             delta_kernel: float) -> None:
    clock = FakeClock()
    backend = backend_type(clock)
    enforcer = Enforcer(backend, table=BASE.table, clock=clock)
    whole = enforcer.apply(to_document(BASE))
    assert (whole.kernel_seconds, whole.duration_seconds) == (RUN, LISTING + RUN + HANDLE)
    step = enforcer.apply_delta(diff(BASE, MORE_PEERS), desired=lambda: to_document(MORE_PEERS))
    assert backend.sent == ["json", delta_sent_as]
    assert (step.kernel_seconds, step.duration_seconds) == (delta_kernel, HANDLE + delta_kernel)
    nothing = enforcer.apply_delta(diff(MORE_PEERS, MORE_PEERS), desired=lambda: to_document(MORE_PEERS))
    assert nothing.transaction.empty and (nothing.kernel_seconds, nothing.duration_seconds) == (0.0, HANDLE)
