"""The differential kernel tests' one step: the same commands sent through libnftables as JSON
to one table and as a batch of our own to another table made alike."""

from __future__ import annotations

from typing import Any

from policyctl.enforcer.backend import LibnftablesBackend
from policyctl.enforcer.errors import NftCommandError
from policyctl.enforcer.nfmessages import Batch


def sent_both_ways(backend: LibnftablesBackend, payload: dict[str, Any], batch: Batch | None) -> str | None:
    """Send ``payload`` (to one table) through libnftables and ``batch`` (the same commands,
    to the other) ourselves; the batch's error (None when it was taken). Both are taken, or
    both refused."""
    assert batch is not None, f"every command here is one the encoders encode: {payload}"
    errors: list[str | None] = []
    for send in (lambda: backend.run(payload), lambda: backend.commit_batch(batch)):
        try:
            send()
            errors.append(None)
        except NftCommandError as error:
            errors.append(error.nft_error.splitlines()[0])
    assert (errors[0] is None) == (errors[1] is None), errors
    return errors[1]
