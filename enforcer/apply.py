"""The enforcer: keep one nftables table equal to the compiler's desired ruleset.

Every apply sends only the difference between the table and the desired ruleset, as one
transaction (:mod:`policyctl.enforcer.diff`). What the table holds comes from one of two places:

* the kernel, read back in full (``nft -j list table``): on the first apply of an enforcer
  (so one that restarts, or a second one started by hand, continues from whatever the table
  holds), after any failed or dry-run-only history, and whenever the caller asks for it
  (``verify=True``, or :meth:`Enforcer.verify`, the agent's periodic read-back that repairs
  drift);
* otherwise the state this enforcer itself committed last. Listing ~100k elements back and
  parsing them costs far more than the change an event brings, so between full reads the
  enforcer trusts its own last commit, guarded by one cheap check: the table's kernel handle
  (one netlink query, see :meth:`NftBackend.table_handle`) must still be the one it wrote
  to. A table deleted or re-created by someone else gets a new handle and is read back in
  full; an edit *inside* the table is found by the next ``verify`` read.

:meth:`Enforcer.apply_delta` takes the compiler's :class:`RulesetDelta` instead of a whole
desired ruleset: against a trusted last commit it plans from the delta alone
(:func:`~policyctl.enforcer.diff.plan_delta`), so an event costs as much as it changes, not
as much as the table holds; whenever the last commit cannot be trusted, or the delta does not
fit it, it applies the whole desired ruleset instead.

The table is never flushed and re-created, so there is no instant without policy. A
transaction the kernel rejects changes nothing; the error names the command that failed, and
the next apply reads the kernel back in full.

The enforcer touches only its own table (``family``/``table``); ``cleanup`` deletes that table
and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from policyctl.compiler.delta import RulesetDelta
from policyctl.enforcer.backend import GivingWayListing, NftBackend, handle_from_listing
from policyctl.enforcer.diff import (
    DeltaMismatch,
    Transaction,
    plan,
    plan_delta,
    plan_delta_renames_later,
    plan_later,
)
from policyctl.enforcer.batches import transaction_batch
from policyctl.enforcer.errors import NftApplyError, NftCommandError
from policyctl.enforcer.givingway import GaveWay
from policyctl.enforcer.tables import ChainState, SetState, TableState, read_table, settled_table


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """What one apply did. ``applied`` is False for a dry run and when nothing differed;
    ``transaction`` is what was (or, in a dry run, would have been) sent. ``kernel_seconds``
    is the part of ``duration_seconds`` spent handing the transaction to the backend and
    waiting for its answer (the kernel's commit; for a transaction sent as libnftables JSON
    also libnftables' own work), 0 when nothing was sent: the rest is reading and planning,
    which is ours, so a slow apply says on which side of the netlink socket its time went."""

    transaction: Transaction
    applied: bool
    dry_run: bool
    duration_seconds: float
    kernel_seconds: float = 0.0

    @property
    def transaction_id(self) -> str:
        return self.transaction.transaction_id

    @property
    def changed(self) -> bool:
        return not self.transaction.empty

    def summary(self) -> dict[str, Any]:
        """A plain, JSON-ready account (sorted keys by construction of the caller)."""
        t = self.transaction
        return {
            "applied": self.applied,
            "dry_run": self.dry_run,
            "transaction_id": t.transaction_id if not t.empty else None,
            "commands": len(t.commands),
            "created_table": t.created_table,
            "elements_added": t.elements_added,
            "elements_removed": t.elements_removed,
            "chains_added": list(t.chains_added),
            "chains_replaced": list(t.chains_replaced),
            "chains_deleted": list(t.chains_deleted),
            "sets_added": list(t.sets_added),
            "sets_recreated": list(t.sets_recreated),
            "sets_deleted": list(t.sets_deleted),
            "duration_seconds": round(self.duration_seconds, 6),
        }


class Enforcer:
    """Applies desired rulesets to one table through an :class:`NftBackend`."""

    def __init__(
        self,
        backend: NftBackend,
        *,
        table: str = "policyctl",
        family: str = "inet",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.table = table
        self.family = family
        self._clock = clock
        self._committed: TableState | None = None
        self._last_desired: TableState | None = None
        self._renames: Mapping[str, ChainState] = {}
        """Chains the last delta changed only in their comments, not yet sent (:meth:`settle`)."""
        self._removals = RulesetDelta()
        """The rest of the last step its caller left for later (removals, and chain rewrites
        that decide no packet), not yet sent (:meth:`settle`)."""
        self._handle: object = None
        self.full_reads = 0
        """How many applies and plans read the table back from the kernel in full."""
        self.netlink_batches = 0
        """How many transactions went to the kernel as nfnetlink batches of our own."""

    def forget(self) -> None:
        """Stop trusting the last commit: the next apply reads the kernel back in full."""
        self._committed = None
        self._handle = None
        self._drop_later()

    def table_handle(self) -> object:
        """The kernel's handle of our table (None when it does not exist), from the backend's
        cheap query; a backend without one is asked for the ``list tables`` listing."""
        query = getattr(self.backend, "table_handle", None)
        if query is not None:
            return query(self.family, self.table)
        return handle_from_listing(
            self.backend.run({"nftables": [{"list": {"tables": None}}]}), self.family, self.table
        )

    @property
    def committed(self) -> TableState | None:
        """What the last successful transaction left in the table, as the enforcer trusts it
        (None before one, and after a failure or :meth:`forget`). No kernel query: the
        periodic read-back is what checks that the kernel still holds it."""
        return self._committed

    def _trusted(self) -> TableState | None:
        """The last committed state when the table is still the one it was committed to."""
        if self._committed is None or self._handle is None:
            return None
        try:
            handle = self.table_handle()
        except NftCommandError:
            handle = None
        if handle != self._handle:
            self.forget()
            return None
        return self._committed

    def current(self) -> TableState | None:
        """Our table as the kernel holds it now, None when it does not exist."""
        self.full_reads += 1
        return self._read_listing(self.backend.list_table(self.family, self.table))

    def _read_listing(
        self, listing: Mapping[str, Any] | None, interrupted: Callable[[], bool] | None = None
    ) -> TableState | None:
        if listing is None:
            return None
        return read_table(
            listing, family=self.family, table=self.table, source="<kernel>", strict=False, interrupted=interrupted
        )

    def desired_state(self, desired: Mapping[str, Any], *, source: str = "<ruleset>") -> TableState:
        """``desired`` read strictly; sets written as in the previous desired ruleset are
        taken from its reading rather than parsed again."""
        state = read_table(desired, family=self.family, table=self.table, source=source, reuse=self._last_desired)
        self._last_desired = state
        return state

    def plan(self, desired: Mapping[str, Any], *, source: str = "<ruleset>") -> Transaction:
        """The transaction an apply would send now (reads the kernel, changes nothing)."""
        return plan(self.current(), self.desired_state(desired, source=source))

    def apply(
        self,
        desired: Mapping[str, Any],
        *,
        dry_run: bool = False,
        source: str = "<ruleset>",
        verify: bool = False,
    ) -> ApplyReport:
        """Make our table equal to ``desired`` in one atomic transaction.

        The difference is taken against the last commit when it can be trusted (see the
        module docstring), else against a full read of the kernel; ``verify`` forces the full
        read, which is how drift inside the table is found and repaired. A dry run still asks
        the kernel to validate the transaction (nft's check mode), so a ruleset that would be
        rejected is reported as :class:`NftApplyError` without changing anything."""
        started = self._clock()
        wanted = self.desired_state(desired, source=source)
        if not dry_run:
            self._drop_later()  # the table still holds what they change, so the plan below includes them
        current = None if verify else self._trusted()
        if current is None:
            current = self.current()
        return self._apply_planned(plan(current, wanted), wanted, dry_run=dry_run, started=started)

    def verify(
        self,
        desired: Callable[[], Mapping[str, Any]],
        *,
        source: str = "<ruleset>",
        interrupted: Callable[[], bool] = lambda: False,
    ) -> ApplyReport | None:
        """Read the table back in full and repair it to what this enforcer committed last
        (``desired()``, rendered and read, when there is no trusted commit), given up as soon
        as ``interrupted()`` is true: None then, with nothing sent and the trusted commit
        unchanged.

        A read-back costs what the table holds (at 10k pods a quarter of a second, at 100k
        several), and an event that arrives meanwhile should not wait for it. So the last
        commit is the reference when it is trusted: it is what the transactions made the
        table (the law of :meth:`apply_delta`), and rendering and reading the whole desired
        ruleset again would cost more than listing the kernel. The kernel is listed through
        the backend's ``list_table_giving_way`` where it has one (a child process, stopped the
        moment ``interrupted()`` is true) and its listing read asking ``interrupted()`` every
        1,024 elements and 64 objects, and the plan asking it before each set; it is asked
        again between the steps: render and read ``desired()`` (only without a trusted
        commit), list, read the listing, plan and send. The plan and the send are never split,
        so what is sent is always the difference against the listing just read."""
        started = self._clock()
        if interrupted():
            return None
        self.send_later()
        wanted = self._trusted()
        if wanted is None:
            document = desired()
            if interrupted():
                return None
            wanted = self.desired_state(document, source=source)
            if interrupted():
                return None
        try:
            listing = self._list_giving_way(interrupted)
            if interrupted():
                return None
            current = self._read_listing(listing, interrupted)
            if interrupted():
                return None
            transaction = plan(current, wanted, interrupted=interrupted)
        except GaveWay:
            return None
        return self._apply_planned(transaction, wanted, dry_run=False, started=started)

    def _list_giving_way(self, interrupted: Callable[[], bool]) -> Mapping[str, Any] | None:
        self.full_reads += 1
        giving_way = getattr(self.backend, "list_table_giving_way", None)
        if giving_way is None:
            listing: Mapping[str, Any] | None = self.backend.list_table(self.family, self.table)
            return listing
        return cast(GivingWayListing, self.backend).list_table_giving_way(self.family, self.table, interrupted)

    def _apply_planned(
        self, transaction: Transaction, wanted: TableState, *, dry_run: bool, started: float
    ) -> ApplyReport:
        kernel = self._send_or_forget(transaction, dry_run=dry_run)
        if not dry_run:
            self._remember(wanted, created=transaction.created_table)
            release = getattr(self.backend, "release_cache", None)
            if release is not None and not transaction.empty:
                release()
        return ApplyReport(
            transaction=transaction,
            applied=not dry_run and not transaction.empty,
            dry_run=dry_run,
            duration_seconds=self._clock() - started,
            kernel_seconds=kernel,
        )

    def apply_delta(
        self,
        delta: RulesetDelta,
        *,
        desired: Callable[[], Mapping[str, Any]],
        source: str = "<ruleset>",
        renames_later: bool = False,
        later: RulesetDelta | None = None,
    ) -> ApplyReport:
        """Apply one compiler step, ``delta``, in one atomic transaction.

        ``delta`` must lead from the ruleset this enforcer applied last to ``desired()``, the
        whole new ruleset, which is rendered only when needed: on the first apply, after a
        failure or a ``forget``, when the table's handle changed, and when the delta does not
        fit the last commit (it names what the table lacks). Otherwise the transaction is
        planned from the delta alone and the patched state is trusted from then on; an empty
        delta costs the handle check only. A rejected transaction raises
        :class:`NftApplyError` as :meth:`apply` does, changes nothing in the kernel, and makes
        the next call apply in full.

        ``renames_later``: chains whose rules change only in their comments (which decide no
        packet) are left to :meth:`settle`, so the transaction that puts the step's decisions
        in force is not held up by them (``diff.plan_delta_renames_later``); a later delta or
        read-back sends any left first, and a whole apply's plan includes them.

        ``later``: the rest of the compiler's step after ``delta`` (removals, and chain
        rewrites) that decides no packet once ``delta`` is in force (the caller vouches for
        it: ``NodeCompiler.split_unreachable``); it is left to :meth:`settle` as the renames
        are. When this call applies ``desired()`` whole instead, that already leaves them out."""
        started = self._clock()
        self.send_later()
        current = self._trusted()
        if current is None:
            return self.apply(desired(), source=source)
        try:
            if renames_later:
                transaction, patched, renames = plan_delta_renames_later(current, delta, source=source)
            else:
                transaction, patched = plan_delta(current, delta, source=source)
                renames = {}
        except DeltaMismatch:
            self.forget()
            return self.apply(desired(), source=source)
        kernel = self._send_or_forget(transaction, dry_run=False, sets=current.sets)
        self._committed = patched
        self._last_desired = patched
        self._renames = renames
        self._removals = later if later is not None else RulesetDelta()
        return ApplyReport(
            transaction=transaction,
            applied=not transaction.empty,
            dry_run=False,
            duration_seconds=self._clock() - started,
            kernel_seconds=kernel,
        )

    def send_later(self) -> None:
        """Send what the last delta left for later, its comment-only chain changes
        (``renames_later``) and the rest of the step its caller left (``later``), in one
        transaction of their own; nothing when none are left. A failure is raised as any
        apply's, and the next apply reads the kernel in full; removals that do not fit the
        committed state are such a failure, with nothing sent."""
        renames, removals = self._renames, self._removals
        self._drop_later()
        if not renames and removals.empty:
            return
        current = self._trusted()
        if current is None:
            return
        try:
            transaction, after = plan_later(current, renames, removals)
        except DeltaMismatch:
            self.forget()
            raise
        self._send_or_forget(transaction, dry_run=False, sets=current.sets)
        self._committed = after
        self._last_desired = after

    def _drop_later(self) -> None:
        self._renames = {}
        self._removals = RulesetDelta()

    def settle(self) -> None:
        """Send what the last delta left for later (:meth:`send_later`), then fold the
        element changes that deltas left pending beside the committed sets, where they
        outgrew their bound (:func:`~policyctl.enforcer.tables.settled_table`). A fold copies
        its set (1.5 ms for 40k elements), so the agent settles after the kernel has an
        event's change rather than on the way to it; an enforcer that never settles stays
        correct, its patches fold by themselves at four times the bound."""
        self.send_later()
        if self._committed is None:
            return
        folded = settled_table(self._committed)
        if self._last_desired is self._committed:
            self._last_desired = folded
        self._committed = folded

    def _remember(self, committed: TableState, *, created: bool) -> None:
        """Trust ``committed`` from now on. Our transactions never delete or re-create the
        table, so its handle changes only when we created it just now."""
        if created or self._handle is None:
            try:
                self._handle = self.table_handle()
            except NftCommandError:
                self._handle = None
        self._committed = committed if self._handle is not None else None

    def _send_or_forget(
        self, transaction: Transaction, *, dry_run: bool, sets: Mapping[str, SetState] | None = None
    ) -> float:
        """Send ``transaction`` unless it is empty, and return the seconds the backend took
        (0 when nothing was sent); when that fails, stop trusting the last commit, so the
        next apply reads the kernel in full."""
        if transaction.empty:
            return 0.0
        try:
            return self._send(transaction, dry_run=dry_run, sets=sets)
        except BaseException:
            self.forget()
            raise

    def _send(self, transaction: Transaction, *, dry_run: bool, sets: Mapping[str, SetState] | None) -> float:
        """Send ``transaction``: as a batch of our own when the encoders encode every command
        (elements of ``sets``, the trusted last commit's; sets, chains and rules of the
        compiler's vocabulary) and the backend can, else as libnftables JSON. Either way the
        kernel takes all of it or none. Returns the seconds of the backend call alone (the
        encoding is ours and not counted)."""
        try:
            if not dry_run and sets is not None:
                seconds = self._sent_as_batch(transaction, sets)
                if seconds is not None:
                    return seconds
            payload = transaction.payload()
            started = self._clock()
            if dry_run:
                self.backend.check(payload)
            else:
                self.backend.run(payload)
            return self._clock() - started
        except NftCommandError as exc:
            index = exc.index if exc.index is not None else self._culprit(transaction)
            raise NftApplyError(
                exc.nft_error,
                transaction_id=transaction.transaction_id,
                command=dict(transaction.commands[index]) if index is not None else None,
                index=index,
            ) from exc

    def _sent_as_batch(self, transaction: Transaction, sets: Mapping[str, SetState]) -> float | None:
        """The seconds the backend took to commit ``transaction`` as a batch of our own, None
        when it was not sent so (the backend cannot, or a command is not encoded here)."""
        commit = getattr(self.backend, "commit_batch", None)
        if commit is None:
            return None
        batch = transaction_batch(transaction.commands, sets, family=self.family, table=self.table)
        if batch is None:
            return None
        started = self._clock()
        try:
            commit(batch)
        except ImportError:
            return None
        self.netlink_batches += 1
        return self._clock() - started

    def _culprit(self, transaction: Transaction) -> int | None:
        """The first command whose prefix of the transaction the kernel rejects, found by
        bisecting over dry runs (libnftables reports JSON errors without a location)."""
        commands = transaction.payload()["nftables"]

        def fails(length: int) -> bool:
            try:
                self.backend.check({"nftables": commands[:length]})
            except NftCommandError:
                return True
            return False

        if not fails(len(commands)):
            return None
        low, high = 1, len(commands)
        while low < high:
            middle = (low + high) // 2
            if fails(middle):
                high = middle
            else:
                low = middle + 1
        return low - 1

    def cleanup(self) -> bool:
        """Delete our table (and with it everything we own). True if there was one."""
        self.forget()
        if self.backend.list_table(self.family, self.table) is None:
            return False
        try:
            self.backend.run({"nftables": [{"delete": {"table": {"family": self.family, "name": self.table}}}]})
        except NftCommandError as exc:
            raise NftApplyError(exc.nft_error, transaction_id="cleanup") from exc
        return True
