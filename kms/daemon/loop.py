"""The daemon's poll-sign-broadcast cycle.

Per cycle: every chain is polled concurrently (its signatureIds come from the store without decrypting anything);
the pending transactions are grouped by sender and admitted, within the in-flight caps, to a worker pool
(``kms.daemon.pipeline``), where each is checked against the journal and the four-eye server, its keys are resolved,
it is signed through the chain registry, journaled (fsynced) and broadcast. Only the steps that consume a sender's
nonce are ordered; nonces the API leaves out come from one look-up per sender and cycle (``kms.daemon.nonces``).
Failures of the cycle go to the Tatum API in one batch call. Nothing here knows a chain: signing goes through
``Chain.signer``, so a chain that gains a signer works without a change here.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from kms.api import NodeGateway, PendingTransaction
from kms.chains import get_chain
from kms.chains.base import Chain, LazySigner, configured_signer
from kms.daemon.approvals import Approvals
from kms.daemon.deadline import abandon_late, cycle_left, past_deadline
from kms.daemon.four_eye import FourEye, Verdict
from kms.daemon.journal import Entry, Journal, JournalStore, State
from kms.daemon.keys import WalletSource, resolve_keys, wipe_all
from kms.daemon.maintenance import Maintenance
from kms.daemon.model import CycleReport, DaemonConfig, Outcome
from kms.daemon.nonces import SenderNonces
from kms.daemon.pipeline import Dispatcher, Kind, Limits, SenderKey, SenderLane, lanes_of
from kms.daemon.quarantine import InFlight, NoInFlight, NotAloneYet
from kms.errors import ClaimLostError, JournalConflictError, KmsError, TatumApiError
from kms.keys import KeyHandle
from kms.logs import transaction_logger
from kms.metrics import Metrics, NullMetrics
from kms.signing.base import NonceSigner, OrderFree, RecoveringSubmitter, Recovery, SignedTransaction, Signer, Submitter
from kms.tatum.client import MAX_SIGNATURE_IDS, TatumClient

log = logging.getLogger("kms.daemon")

AuditSink = Callable[[Mapping[str, object]], object]
_REPORTED_MEMORY = 100_000
# Refusals remembered in memory (the journal keeps them all; this only saves asking it): the oldest are forgotten.
_REFUSED_MEMORY = 100_000


class DaemonStore(WalletSource, JournalStore, Protocol):
    def signature_ids(self, chain: str, testnet: bool) -> list[str]: ...
    def counts(self) -> dict[tuple[str, bool], int]: ...


class Replica(Protocol):
    """One replica of several on a shared store (kms.daemon.replication): its share of the ids, and its claims."""

    def signature_ids(self, chain: str, testnet: bool) -> list[str]: ...
    def acquire(self, pending_id: str) -> bool: ...
    def confirm(self, pending_id: str) -> None: ...
    def release(self, pending_id: str) -> None: ...
    def wait_moved(self, timeout: float) -> bool: ...
    def taking_over(self) -> AbstractContextManager[None]: ...
    @property
    def ready(self) -> bool: ...


class SealState(Protocol):
    """A sealed start (kms.seal): no cycle runs while sealed."""

    @property
    def sealed(self) -> bool: ...

    def wait_unsealed(self, timeout: float) -> bool: ...


def _allocated_nonce(signed: SignedTransaction) -> int | None:
    """The nonce the daemon handed out for this payload (its journal meta says so), None for any other payload."""
    meta = signed.meta or {}
    nonce = meta.get("nonce")
    if meta.get("assigned") is True and isinstance(nonce, int) and not isinstance(nonce, bool):
        return nonce
    return None


class _Held(KmsError):
    """Signed and journaled, not broadcast this cycle: a nonce gap of its sender holds it back."""


class _Failure(KmsError):
    """A per-transaction failure with the stage it happened in (a metrics error kind)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


def _unsupported(chain: Chain) -> str:
    if chain.retired:
        return f"{chain.retired}; nothing signed"
    return f"signing {chain.code} is not supported by this kms"


class _Trail:
    """What was decided for one transaction: its decision record, and whether that is already in the audit log."""

    def __init__(self, pending: PendingTransaction) -> None:
        self.decision_written = False
        self.record: dict[str, object] = {
            "record": "decision",
            "pendingId": pending.id,
            "chain": pending.chain,
            "signatureIds": [*pending.hashes, *(ref.id for ref in pending.signatures)],
            "fourEye": {"verdict": "not-required", "status": None},
            "payloadSha256": None,
        }


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        store: DaemonStore,
        client: TatumClient,
        *,
        four_eye: FourEye | None = None,
        gateway: NodeGateway | None = None,
        registry: Callable[[str], Chain] = get_chain,
        metrics: Metrics | None = None,
        audit: AuditSink | None = None,
        stop: threading.Event | None = None,
        seal: SealState | None = None,
        replica: Replica | None = None,
        signer_settings: Mapping[str, str] | None = None,
        inflight: InFlight | None = None,
        maintenance: Maintenance | None = None,
        approvals: Approvals | None = None,
    ) -> None:
        if config.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if gateway is not None and bool(gateway.testnet) != bool(config.testnet):
            raise ValueError("the node gateway serves another network than the daemon")
        self.config = config
        self.store = store
        self.client = client
        self.four_eye = four_eye
        self.gateway = gateway
        self.registry = registry
        self.metrics: Metrics = metrics or NullMetrics()
        self.audit = audit
        self.stop = stop or threading.Event()
        self.seal = seal
        self.replica = replica
        self.signer_settings = signer_settings
        """The settings chain signers take (``kms.chains.base.SignerSettings``); None: each signer's defaults."""
        self._signers: dict[int, Signer | None] = {}
        self.inflight: InFlight | NoInFlight = inflight or NoInFlight()
        self.maintenance = maintenance or Maintenance(store, client, self.inflight)
        self.approvals = approvals or Approvals(None, store)  # local policy and approval v2 (kms.daemon.approvals)
        self.cycle_lock = threading.Lock()
        """Held for the length of a cycle; sealing takes it so the keys are never dropped under a running cycle."""
        self.journal = Journal(store)
        self.last_cycle_end: float | None = None
        self.last_cycle_reached_api = False
        self._polls_answered = self._polls_failed = 0
        self.last_report: CycleReport | None = None
        self._tx_pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="kms-tx")
        self._dispatcher = Dispatcher(
            self._tx_pool, Limits(config.max_in_flight, config.max_in_flight_per_sender), self.stop
        )
        self._poll_pool = ThreadPoolExecutor(
            max_workers=max(1, min(len(config.chains), 32)), thread_name_prefix="kms-poll"
        )
        self._inflight: set[str] = set()
        self._refused_this_run: OrderedDict[str, None] = OrderedDict()
        self._reported: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()
        self._audit_broken = False
        self._announced_chains: tuple[str, ...] | None = None

    def warm_up(self) -> None:
        """Load the polled chains' signers now (their libraries are imported on first use): otherwise the first
        cycle's workers would all queue behind one import."""
        for code in self.config.chains:
            try:
                chain = self.registry(code)
                chain.warm_up()
                signer = self._signer(chain)
                if isinstance(signer, LazySigner):
                    signer.load()
            except Exception as exc:  # a signer that cannot load fails its transactions later, with a report
                log.error("could not load the %s signer (%s)", code, type(exc).__name__)

    # -- the cycle --------------------------------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Cycles every ``period`` seconds (a cycle that overruns is followed at once by the next) until ``stop``;
        with ``run_once``, exactly one cycle. While sealed, waits for the unseal."""
        while not self.stop.is_set():
            if self.seal is not None and not self.seal.wait_unsealed(0.2):
                continue
            started = time.monotonic()
            with self.cycle_lock:
                if self.seal is not None and self.seal.sealed:
                    continue
                try:
                    self.maintenance.before_cycle()  # start-up work first; a failure there runs no cycle
                    self.approvals.before_cycle(lambda r: self._write_audit(r, logging.LoggerAdapter(log, {})))
                    self.last_report = self.run_cycle()
                except Exception as exc:  # the loop must survive anything one cycle throws
                    log.error("cycle failed (%s); continuing", type(exc).__name__)
                    self.metrics.error("cycle")
            if self.config.run_once:
                return
            self._wait_for_next_cycle(started)

    def _wait_for_next_cycle(self, started: float) -> None:
        """Until one period after `started`; a replica whose peer left meanwhile polls the ids it took over at once
        (kms.daemon.replication), so they wait no longer than one period, without waiting for its next cycle."""
        while not self.stop.is_set():
            left = self.config.period - (time.monotonic() - started)
            if left <= 0:
                return
            if self.replica is None:
                self.stop.wait(left)
            elif self.replica.wait_moved(min(left, 0.1)):  # short waits: `stop` is seen within 0.1 s
                self._take_over(self.replica)

    def _take_over(self, replica: Replica) -> None:
        with self.cycle_lock:
            try:
                with replica.taking_over():
                    if self.seal is None or not self.seal.sealed:  # sealed: the first cycle after the unseal polls
                        self.run_cycle()
            except Exception as exc:  # as for any cycle: the loop survives it
                log.error("takeover cycle failed (%s); continuing", type(exc).__name__)
                self.metrics.error("cycle")

    def run_cycle(self) -> CycleReport:
        report = CycleReport()
        started = time.monotonic()
        self.metrics.cycle_started()
        self._update_wallet_gauge()
        with self._lock:
            self._polls_answered = self._polls_failed = 0
        report.deadline = started + self.config.cycle_deadline
        polls = [self._poll_pool.submit(self._poll_chain, code, report) for code in self.config.chains]
        work: list[Future[object]] = []
        try:
            for done in as_completed(polls, timeout=cycle_left(report)):
                lanes = lanes_of(done.result(), self._kind_of, self._sender_nonces)
                work += self._dispatcher.dispatch(lanes, lambda lane, unit: self._process_unit(lane, unit, report))
        except TimeoutError:
            log.warning("cycle deadline: a chain's poll did not finish; its transactions wait for a later cycle")
        abandon_late(report, wait(work, timeout=cycle_left(report)).not_done, self.metrics)
        self._report_errors(report)
        report.seconds = time.monotonic() - started
        self.metrics.observe_cycle(report.seconds)
        self.client.versions.tick()
        self.last_cycle_end = time.monotonic()
        # Reached the Tatum API: some poll was answered, or none was needed (no wallets to poll for).
        self.last_cycle_reached_api = self._polls_answered > 0 or self._polls_failed == 0
        busy = report.pending or report.errors or report.chain_errors
        log.log(logging.INFO if busy else logging.DEBUG, "cycle done", extra=report.summary())
        return report

    def _update_wallet_gauge(self) -> None:
        try:
            counts = self.store.counts()
        except KmsError:
            return
        self.metrics.set_wallet_counts(
            {chain: n for (chain, testnet), n in counts.items() if testnet == self.config.testnet}
        )
        self._announce_polled(counts)
        try:
            self.metrics.set_journal_counts(self.store.journal.counts())
        except KmsError:
            pass  # the gauge keeps its last value; the store's own error surfaces where it matters

    def _announce_polled(self, counts: Mapping[tuple[str, bool], int]) -> None:
        """Say which chains are actually polled (those with wallets), at the first cycle (so once unsealed) and
        whenever that changes."""
        if self.config.wallets is not None:
            polled = self.config.chains
        else:
            polled = tuple(code for code in self.config.chains if counts.get((code, self.config.testnet), 0) > 0)
        if polled == self._announced_chains:
            return
        self._announced_chains = polled
        if polled:
            log.info("polling %s for pending transactions", ", ".join(polled), extra={"chains": list(polled)})
        else:
            log.info("no wallets of the configured chains in the store; nothing to poll")

    def _poll_chain(self, code: str, report: CycleReport) -> list[PendingTransaction]:
        if self.stop.is_set():
            return []
        try:
            ids = (
                list(self.config.wallets)
                if self.config.wallets is not None
                else (self.replica or self.store).signature_ids(code, self.config.testnet)
            )
        except KmsError as exc:
            log.error("cannot list the %s wallets: %s", code, exc)
            self.metrics.error("store", code)
            report.chain_error(code, str(exc))
            return []
        if not ids:
            return []
        if len(ids) > MAX_SIGNATURE_IDS:
            message = f"Error: Exceeded limit {MAX_SIGNATURE_IDS} wallets for chain {code}."
            log.error("%s", message)
            self.metrics.error("wallet_limit", code)
            report.chain_error(code, message)
            return []
        shown = {"wallets": len(ids)} if len(ids) > 5 else {"signatureIds": ids}
        log.debug("Getting pending transaction from %s.", code, extra={"chain": code, **shown})
        try:
            batch = self.client.pending(code, ids)
            with self._lock:
                self._polls_answered += 1
        except TatumApiError as exc:
            with self._lock:
                self._polls_failed += 1
            log.error("%s", exc)
            self.metrics.error("poll", code)
            report.chain_error(code, str(exc))
            return []
        except Exception as exc:  # one chain's surprise must not cost the other chains their cycle
            with self._lock:
                self._polls_failed += 1
            log.error("polling %s failed (%s)", code, type(exc).__name__)
            self.metrics.error("poll", code)
            report.chain_error(code, f"internal error ({type(exc).__name__})")
            return []
        for rejected in batch.rejected:
            log.warning("%s: skipped a malformed pending transaction (%s)", code, rejected.reason)
            self.metrics.error("malformed", code)
            if rejected.pending_id is not None:
                report.error(rejected.pending_id, f"malformed pending transaction: {rejected.reason}")
        self.metrics.pending_seen(code, len(batch.transactions))
        with report._lock:
            report.pending += len(batch.transactions)
        return batch.transactions

    # -- one transaction --------------------------------------------------------------------------------------------

    def _kind_of(self, pending: PendingTransaction) -> Kind:
        """FREE: signs without any order (a nonce given, UTXO inputs named); NONCE: takes a nonce from the daemon, in
        its sender's order; SERIAL: any other signer may look up per transaction what one sender's transactions share
        (a sequence number, a proposal key), so they go one at a time."""
        try:
            signer = self._loaded_signer(self.registry(pending.chain))
        except Exception:  # an unknown chain or a signer that cannot load fails on its own, in process()
            return Kind.FREE
        if isinstance(signer, NonceSigner):
            return Kind.FREE if signer.carries_nonce(pending) else Kind.NONCE
        if isinstance(signer, OrderFree) and signer.order_free is True:
            return Kind.FREE
        return Kind.SERIAL if signer is not None else Kind.FREE

    def _sender_nonces(self, key: SenderKey) -> SenderNonces:
        chain = str(key[0])
        return SenderNonces(lambda address, count: self.store.journal.nonces_held(chain, address, count))

    def _process_unit(self, lane: SenderLane, unit: list[PendingTransaction], report: CycleReport) -> None:
        for pending in unit:
            report.count(self.process(pending, report, lane))

    def process(self, pending: PendingTransaction, report: CycleReport, lane: SenderLane | None = None) -> Outcome:
        try:
            return self._process_one(pending, report, lane)
        finally:
            if lane is not None:
                lane.leave(pending)  # whatever happened, the sender's next transaction may take its turn

    def _process_one(self, pending: PendingTransaction, report: CycleReport, lane: SenderLane | None) -> Outcome:
        if self.stop.is_set():
            return Outcome.SKIPPED
        wanted = self.config.transaction_ids
        if wanted is not None and pending.id not in wanted:
            log.info("Tx processing skipped: %s. Expected one of: %s", pending.id, ", ".join(sorted(wanted)))
            return Outcome.SKIPPED
        if past_deadline(report):  # started after the cycle's deadline: left for the next cycle, untouched
            return Outcome.SKIPPED
        with self._lock:
            if pending.id in self._inflight or pending.id in self._refused_this_run:
                return Outcome.SKIPPED
            self._inflight.add(pending.id)
        if not self._claim(pending):
            return Outcome.SKIPPED
        txlog = transaction_logger(log, pending.id, pending.chain)
        trail = _Trail(pending)
        outcome = Outcome.FAILED
        try:
            self.inflight.enter(pending)  # durably marked in flight first (kms.daemon.quarantine)
            outcome = self._process(pending, report, txlog, trail, lane)
        except (ClaimLostError, NotAloneYet) as exc:  # another replica has it / a crash suspect runs alone: later
            txlog.warning("%s", exc)
            outcome = Outcome.SKIPPED
        except _Held as exc:
            outcome = Outcome.HELD
            self.metrics.error("nonce_gap", pending.chain)
            report.error(pending.id, str(exc))
            trail.record["error"] = str(exc)
        except _Failure as exc:
            self._fail(pending, report, txlog, trail, exc.stage, str(exc))
        except JournalConflictError as exc:
            # Another process journaled a different payload first: never broadcast ours; theirs goes out next cycle.
            txlog.error("%s; not broadcasting this signature", exc)
            self.metrics.error("journal", pending.chain)
            trail.record["error"] = "journal conflict: another payload was journaled first; not broadcast"
        except KmsError as exc:
            self._fail(pending, report, txlog, trail, "internal", str(exc))
        except Exception as exc:  # never let one transaction take the worker down; never print library text
            if trail.record["payloadSha256"] is None:
                msg = f"internal error ({type(exc).__name__}); nothing was signed"
            else:
                msg = f"internal error ({type(exc).__name__}) after signing; the journaled transaction is sent again"
            self._fail(pending, report, txlog, trail, "internal", msg)
        finally:
            self.inflight.leave(pending.id)
            with self._lock:
                self._inflight.discard(pending.id)
            if self.replica is not None:
                self.replica.release(pending.id)
        if outcome is not Outcome.SKIPPED and not trail.decision_written:
            trail.record["outcome"] = outcome.value
            self._write_audit(trail.record, txlog)
        return outcome

    def _process(
        self,
        pending: PendingTransaction,
        report: CycleReport,
        txlog: logging.LoggerAdapter[Any],
        trail: _Trail,
        lane: SenderLane | None = None,
    ) -> Outcome:
        code = pending.chain
        chain = self._stage("chain", lambda: self.registry(code))
        entry = self._stage("journal", lambda: self.journal.lookup(pending))
        if entry.changed:
            # Never re-send old bytes for a request that is no longer the one signed, and never sign it anew.
            raise _Failure(
                "journal", f"pending transaction {pending.id} was already signed here, but {entry.changed}; not sent"
            )
        if entry.state.blocks_signing:
            txlog.debug("%s", entry.note)
            return Outcome.SKIPPED
        if entry.state is State.NEW and chain.signer is None:
            raise _Failure("unsupported", _unsupported(chain))
        intent, stopped = self.approvals.screen(pending, entry.state, report, trail.record)  # policy, before all
        if stopped is not None:
            return stopped
        if self.four_eye is not None and not self._approved(pending, report, txlog, entry.state, trail):
            refused = trail.record["fourEye"]["verdict"] == Verdict.REFUSED.value  # type: ignore[index]
            return Outcome.REFUSED if refused else Outcome.UNAVAILABLE
        landed_id: str | None = None
        if entry.state is State.SIGNED and entry.tx_data is not None:
            signed, landed_id, outcome = self._resume(pending, chain, entry, txlog, trail)
        else:
            signed = self._sign(pending, chain, txlog, lane)
            outcome = Outcome.BROADCAST
        payload_sha256 = hashlib.sha256(signed.payload.encode()).hexdigest()
        trail.record["payloadSha256"] = payload_sha256
        trail.record["outcome"] = "signed" if outcome is Outcome.BROADCAST else "rebroadcast"
        newly_signed = outcome is Outcome.BROADCAST  # approval v2 of exactly the journaled bytes, before any send
        if landed_id is None and (
            stopped := self.approvals.approve(pending, intent, payload_sha256, newly_signed, report, trail.record)
        ):
            return stopped
        # Nothing leaves kms without its decision on record (fail closed).
        if self._audit_broken:
            raise _Failure("audit", "the audit log cannot be written; nothing is broadcast until it is fixed")
        self._write_audit(trail.record, txlog)
        trail.decision_written = True
        if self._audit_broken:
            raise _Failure("audit", "the audit log could not be written; not broadcast")
        return self._send(pending, chain, signed, payload_sha256, txlog, lane, landed_id) or outcome

    def _send(
        self,
        pending: PendingTransaction,
        chain: Chain,
        signed: SignedTransaction,
        payload_sha256: str,
        txlog: logging.LoggerAdapter[Any],
        lane: SenderLane | None,
        landed_id: str | None = None,
    ) -> Outcome | None:
        """Submit and broadcast a journaled payload whose decision is on record (``landed_id``: it is on chain already,
        broadcast only that id); HELD when a nonce gap of its sender holds it back, None when it went out."""
        code = pending.chain
        result_record: dict[str, object] = {
            "record": "broadcast", "pendingId": pending.id, "chain": code, "payloadSha256": payload_sha256,
        }  # fmt: skip
        nonce = _allocated_nonce(signed)
        gap = lane.begin_broadcast(nonce) if lane is not None else None
        if gap is not None:
            message = (
                f"signed with nonce {nonce} and journaled, not broadcast: the broadcast of nonce {gap.nonce} of this "
                f"sender (pending transaction {gap.pending_id}) failed; the same payload is sent again next cycle"
            )
            txlog.warning("%s", message)
            self._write_audit({**result_record, "broadcast": {"ok": False, "held": message}}, txlog)
            raise _Held(message)
        try:
            if self.replica is not None:
                self.replica.confirm(pending.id)  # never broadcast on a lease that ran out
            tx_data = landed_id if landed_id is not None else self._submit(chain, signed)
            result = self._broadcast(pending, chain, tx_data)
        except _Failure as exc:
            self._write_audit({**result_record, "broadcast": {"ok": False, "error": str(exc)}}, txlog)
            if lane is not None and lane.broadcast_failed(nonce, pending.id):
                self.metrics.nonce_gap(code)
                txlog.warning("nonce gap at %s: later nonces of this sender wait for the next cycle", nonce)
            raise
        self._write_audit({**result_record, "broadcast": {"ok": True, "txId": result}}, txlog)
        self._stage("journal", lambda: self.journal.record_broadcast(pending.id))
        self.metrics.broadcast(code)
        txlog.info("Tx was processed: %s", pending.id, extra={"txId": result})
        return None

    def _claim(self, pending: PendingTransaction) -> bool:
        """With replicas: take the pending id's claim before anything is looked at or signed (False: another
        replica holds it, or the database cannot be reached; either way nothing is done here)."""
        if self.replica is None:
            return True
        try:
            if self.replica.acquire(pending.id):
                return True
        except KmsError as exc:
            log.warning("cannot claim %s (%s); not signed", pending.id, exc)
            self.metrics.error("claim", pending.chain)
        with self._lock:
            self._inflight.discard(pending.id)
        return False

    def _approved(
        self,
        pending: PendingTransaction,
        report: CycleReport,
        txlog: logging.LoggerAdapter[Any],
        state: State,
        trail: _Trail,
    ) -> bool:
        assert self.four_eye is not None
        started = time.monotonic()
        decision = self.four_eye.check(pending)
        self.metrics.four_eye_checked(decision.verdict.value, time.monotonic() - started)
        trail.record["fourEye"] = {"verdict": decision.verdict.value, "status": decision.status}
        if decision.approved:
            return True
        if decision.verdict is Verdict.REFUSED:
            txlog.warning("four-eye approval refused (%s); not signed and not asked again", decision.reason)
            with self._lock:
                self._refused_this_run[pending.id] = None
                while len(self._refused_this_run) > _REFUSED_MEMORY:
                    self._refused_this_run.popitem(last=False)
            if state is State.NEW:
                self._stage("journal", lambda: self.journal.record_refused(pending.id, pending.chain))
            self.metrics.four_eye_rejected(pending.chain)
            report.error(pending.id, f"Transaction refused by the four-eye approval server ({decision.reason})")
        else:
            txlog.warning("four-eye approval unavailable (%s); not signed, asking again next cycle", decision.reason)
            self.metrics.error("four_eye_unavailable", pending.chain)
        return False

    def _signer(self, chain: Chain) -> Signer | None:
        """The chain's signer, built once per daemon with the daemon's signer settings."""
        if self.signer_settings is None or chain.signer is None:
            return chain.signer
        with self._lock:
            key = id(chain.signer)
            if key not in self._signers:
                self._signers[key] = configured_signer(chain, self.signer_settings)
            return self._signers[key]

    def _resume(
        self,
        pending: PendingTransaction,
        chain: Chain,
        entry: Entry,
        txlog: logging.LoggerAdapter[Any],
        trail: _Trail,
    ) -> tuple[SignedTransaction, str | None, Outcome]:
        """A journaled transaction: (what to send, the id to broadcast without sending when it already landed, the
        outcome). The same payload again, except for a chain whose signature can expire unsent
        (``RecoveringSubmitter``): its node is asked first, and only a proof that the old signature expired and never
        landed lets it be signed anew, as an explicit journal transition."""
        assert entry.tx_data is not None
        signed = SignedTransaction(entry.tx_data, entry.meta or {})
        signer = self._stage("submit", lambda: self._loaded_signer(chain))
        if not isinstance(signer, RecoveringSubmitter):
            txlog.info("already signed before; broadcasting the same signed transaction again")
            return signed, None, Outcome.REBROADCAST
        gateway = self._gateway_for(chain)
        decision = self._stage("recovery", lambda: signer.recovery_decision(signed, gateway))
        if decision is Recovery.LANDED:
            txlog.info("already signed and on chain; broadcasting its transaction id without sending it again")
            return signed, self._stage("recovery", lambda: signer.transaction_id(signed)), Outcome.REBROADCAST
        if decision is Recovery.RESIGN:
            txlog.warning("the journaled transaction expired and never landed (the node says so); signing it anew")
            trail.record["replacesPayloadSha256"] = hashlib.sha256(signed.payload.encode()).hexdigest()
            return self._sign(pending, chain, txlog, replacing=signed), None, Outcome.BROADCAST
        txlog.info("already signed before and not on chain yet; sending the same signed transaction again")
        return signed, None, Outcome.REBROADCAST

    def _loaded_signer(self, chain: Chain) -> Signer | None:
        """The configured signer itself (a lazy one is loaded), to see which protocols it implements."""
        signer = self._signer(chain)
        return signer.load() if isinstance(signer, LazySigner) else signer

    def _sign(
        self,
        pending: PendingTransaction,
        chain: Chain,
        txlog: logging.LoggerAdapter[Any],
        lane: SenderLane | None = None,
        replacing: SignedTransaction | None = None,
    ) -> SignedTransaction:
        signer = self._signer(chain)
        if signer is None:
            raise _Failure("unsupported", _unsupported(chain))
        if self._audit_broken:
            raise _Failure("audit", "the audit log cannot be written; nothing is signed until it is fixed")
        indexes = self._stage("keys", lambda: chain.offchain_key_indexes(pending))
        keys = self._stage("keys", lambda: resolve_keys(pending, chain, self.store, self.config.testnet, indexes))
        try:
            # Only a transaction that takes its nonce from the daemon waits here for its sender's previous one.
            with lane.turn(pending) if lane is not None else nullcontext():
                signed = self._sign_and_journal(pending, chain, signer, keys, lane, replacing)
        finally:
            wipe_all(keys)
        self.metrics.signed(pending.chain)
        txlog.info("signed and journaled")
        return signed

    def _sign_and_journal(
        self,
        pending: PendingTransaction,
        chain: Chain,
        signer: Signer,
        keys: list[KeyHandle],
        lane: SenderLane | None,
        replacing: SignedTransaction | None = None,
    ) -> SignedTransaction:
        nonces = lane.nonces if lane is not None and lane.ordered(pending) else None
        nonce_signer = self._loaded_signer(chain) if nonces is not None else None
        if nonces is None or not isinstance(nonce_signer, NonceSigner):
            signed = self._stage("signing", lambda: signer.sign(pending, keys, self.config.testnet, self.gateway))
            self._journal_signed(pending, signed, replacing)
            return signed
        assert lane is not None
        if (gap := lane.gap) is not None:
            raise _Failure(
                "nonce_gap",
                f"not signed: the broadcast of nonce {gap.nonce} of this sender (pending transaction "
                f"{gap.pending_id}) failed; signed in a later cycle with a fresh nonce",
            )
        testnet, gateway = self.config.testnet, self.gateway
        try:
            signed = self._stage(
                "signing", lambda: nonce_signer.sign_with_nonces(pending, keys, testnet, gateway, nonces)
            )
            nonce = _allocated_nonce(signed) if isinstance(signed, SignedTransaction) else None
            if nonce is None:
                raise _Failure("signing", f"the {pending.chain} signer did not record the nonce it was handed")
            self._journal_signed(pending, signed)
        except BaseException:
            nonces.abandon()
            raise
        nonces.commit(nonce)
        return signed

    def _journal_signed(
        self, pending: PendingTransaction, signed: object, replacing: SignedTransaction | None = None
    ) -> None:
        if not isinstance(signed, SignedTransaction) or not isinstance(signed.payload, str) or not signed.payload:
            raise _Failure("signing", f"the {pending.chain} signer returned no transaction")
        meta = dict(signed.meta) if signed.meta else None
        if replacing is None:
            self._stage("journal", lambda: self.journal.record_signed(pending, signed.payload, meta))
            return
        reason = "re-signed: the journaled signature expired and never landed"
        self._stage(
            "journal",
            lambda: self.journal.record_resigned(pending, replacing.payload, signed.payload, meta or {}, reason),
        )

    def _submit(self, chain: Chain, signed: SignedTransaction) -> str:
        """What goes to the broadcast endpoint: the signed payload, or where the chain's signer sends it to a node
        first (``Submitter``), what that returns. Runs only after the payload is journaled and the decision is on
        record."""
        signer = self._stage("submit", lambda: self._loaded_signer(chain))
        if not isinstance(signer, Submitter):
            return signed.payload
        gateway = self._gateway_for(chain)
        tx_data = self._stage("submit", lambda: signer.submit(signed, gateway))
        if not isinstance(tx_data, str) or not tx_data:
            raise _Failure("submit", f"the {chain.code} node gave back no transaction id")
        return tx_data

    def _gateway_for(self, chain: Chain) -> NodeGateway:
        if self.gateway is None:
            raise _Failure("submit", f"{chain.code} transactions are sent to a node first, and no gateway is set")
        return self.gateway

    def _broadcast(self, pending: PendingTransaction, chain: Chain, tx_data: str) -> str | None:
        def send() -> str | None:
            if pending.withdrawal_id and chain.offchain_withdrawals:
                return self.client.offchain_broadcast(pending.chain, pending.id, pending.withdrawal_id, tx_data).tx_id
            return self.client.broadcast(chain.broadcast_route, tx_data, pending.id).tx_id

        return self._stage("broadcast", send)

    def _stage(self, stage: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (_Failure, JournalConflictError, ClaimLostError):
            raise
        except KmsError as exc:
            raise _Failure(stage, str(exc)) from None

    def _fail(
        self,
        pending: PendingTransaction,
        report: CycleReport,
        txlog: logging.LoggerAdapter[Any],
        trail: _Trail,
        stage: str,
        msg: str,
    ) -> None:
        txlog.error("Could not process transaction id %s (%s), error: %s", pending.id, stage, msg)
        self.metrics.error(stage, pending.chain)
        report.error(pending.id, msg)
        trail.record["stage"] = stage
        trail.record["error"] = msg

    def _write_audit(self, record: Mapping[str, object], txlog: logging.LoggerAdapter[Any]) -> None:
        """Append one audit record. A log that cannot be written stops all signing and broadcasting (fail closed)
        until the daemon is restarted with a working log."""
        if self.audit is None:
            return
        try:
            self.audit(record)
        except Exception as exc:
            txlog.error("audit log could not be written (%s); signing stops until the daemon is restarted", exc)
            self.metrics.error("audit", str(record.get("chain", "none")))
            self.metrics.audit_write_failed()
            self._audit_broken = True

    # -- reporting --------------------------------------------------------------------------------------------------

    def _report_errors(self, report: CycleReport) -> None:
        """One batch call; an identical (id, error) already reported by this process is not sent again."""
        with self._lock:
            fresh = [e for e in report.errors if (e["signatureId"], e["error"]) not in self._reported]
        if not fresh:
            return
        try:
            self.client.report_errors(fresh)
        except TatumApiError as exc:
            log.error("could not report %d failures: %s", len(fresh), exc)
            self.metrics.error("report")
            return
        log.info("reported %d failures to /v3/tatum/kms/batch", len(fresh))
        with self._lock:
            for entry in fresh:
                self._reported[(entry["signatureId"], entry["error"])] = None
            while len(self._reported) > _REPORTED_MEMORY:
                self._reported.popitem(last=False)

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def ready(self, now: float | None = None) -> bool:
        """Unsealed, and the last cycle reached the Tatum API and ended recently (within three periods, at least
        30 s)."""
        if self.last_cycle_end is None or (self.seal is not None and self.seal.sealed):
            return False
        if not self.last_cycle_reached_api:
            return False
        if self.replica is not None and not self.replica.ready:
            return False
        horizon = max(3 * self.config.period, 30.0)
        return (time.monotonic() if now is None else now) - self.last_cycle_end <= horizon

    def close(self, wait: bool = True) -> None:
        self._tx_pool.shutdown(wait=wait, cancel_futures=True)
        self._poll_pool.shutdown(wait=wait, cancel_futures=True)


__all__ = ["CycleReport", "Daemon", "DaemonConfig", "Outcome", "SealState"]
