"""When the prober's samples count as the new verdict."""

from __future__ import annotations

import pytest

from policyctl.bench.latency import Sample, flip_time

OLD, NEW = True, False


def _samples(verdicts: str) -> list[Sample]:
    return [Sample(float(i), v == "o") for i, v in enumerate(verdicts)]


@pytest.mark.parametrize(
    ("verdicts", "confirm", "flip"),
    [
        ("ooooxxxx", 3, 4.0),
        ("ooxoxxxx", 3, 4.0),
        ("ooooxxxo", 3, None),
        ("ooooxx", 3, None),
        ("xxxx", 3, 0.0),
        ("", 1, None),
    ],
    ids=[
        "clean flip",
        "a lone early drop is not the flip",
        "back to the old verdict",
        "too few confirmations",
        "new from the start",
        "no samples",
    ],
)
def test_flip_is_the_first_attempt_of_the_last_run_of_new_verdicts(
    verdicts: str, confirm: int, flip: float | None
) -> None:
    assert flip_time(_samples(verdicts), NEW, confirm=confirm) == flip
