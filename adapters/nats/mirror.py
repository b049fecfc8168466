"""The journal mirrored into a JetStream stream: a reader of the journal files, never on the append path.

Invariant: stream sequence == journal seq, and the message at each sequence is the journal's own msgpack
envelope, byte for byte. Each publish carries `Nats-Msg-Id` = seq (a re-send inside the duplicate window
is dropped by the server) and `Nats-Expected-Last-Sequence` = seq - 1 (a publish that would leave a gap
or land twice is refused), so exactly-once holds across crashes of the mirror, the server and the
service. Publishing is pipelined (`adapters.nats.publisher`, at most `max_in_flight` unacknowledged);
anything that goes wrong in flight (an ack that does not come, a refused publish, a reconnect) is
answered the same way: forget what is in flight, ask the stream for its last sequence, check it, resume
after it.

What the mirror refuses to paper over (`MirrorDiverged`, the mirror stops): a stream ahead of the journal
(the journal was cut below what was mirrored, or it is another journal), different bytes at a seq, a
stream with holes. It never deletes or overwrites a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from adapters.nats.connect import MirrorConfig
from adapters.nats.publisher import PublishFailed, SeqPublisher, StoredElsewhere
from events.journal_errors import JournalError
from events.reader import JournalReader
from events.snapshots import latest_snapshot, list_snapshots
from oms.client.jetstream_wire import (
    SNAPSHOT_OBJECT,
    MirrorStatus,
    ReplicaStatus,
    SnapshotRecord,
    connect,
    events_subject,
    redact_url,
    snapshot_bucket,
    status_subject,
)

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.js.client import JetStreamContext

log = logging.getLogger(__name__)

Batches = Generator[list[tuple[int, bytes]], None, None]


class MirrorDiverged(RuntimeError):
    """The stream and the journal disagree; the mirror stopped rather than overwrite or skip."""

    code = "mirror_diverged"


class StreamRefused(MirrorDiverged):
    """The server will not create the stream as configured (say, 3 replicas on a lone server)."""

    code = "stream_refused"


class _Resync(Exception):
    """Something in flight failed: re-read the stream's last sequence and resume after it."""


class Mirror:
    """`await mirror.run()` until cancelled; `status()` at any time. Raises `MirrorDiverged`."""

    def __init__(self, journal_dir: Path, config: MirrorConfig, status_path: Path | None = None) -> None:
        self.journal_dir = Path(journal_dir)
        self.config = config
        self.status_path = status_path
        self.stream = config.nats.stream
        self.subject = events_subject(self.stream)
        self.reader = JournalReader(self.journal_dir)
        self.journal_seq = 0  # the journal's last seq as far as the mirror has read
        self.mirrored_seq = 0  # the stream's last acknowledged seq
        self.snapshot_seq = 0  # the seq of the snapshot in the object store
        self.connected = False
        self.error = ""
        self.resyncs = 0
        self._told_replicas = False
        self._reconnects = 0  # a reconnect loses what was in flight: the session resynchronizes at once
        self.server = ""  # the node connected to
        self.cluster = ""  # on a cluster: its name, the stream's leader and the other replicas
        self.leader = ""
        self.replicas: tuple[ReplicaStatus, ...] = ()
        self._following = False  # reading the journal now (else the report reads its last seq itself)
        self._stopping = False
        self._nc: NatsClient | None = None

    def status(self) -> MirrorStatus:
        return MirrorStatus(
            stream=self.stream,
            url=redact_url(self.config.nats.url),
            journal_seq=self.journal_seq,
            mirrored_seq=self.mirrored_seq,
            lag=max(0, self.journal_seq - self.mirrored_seq),
            snapshot_seq=self.snapshot_seq,
            connected=self.connected,
            ts_ns=time.time_ns(),
            error=self.error,
            server=self.server,
            cluster=self.cluster,
            leader=self.leader,
            replicas=self.replicas,
        )

    def stop(self) -> None:
        """Ask `run` to end after the current turn (also when a cancellation was lost in a race)."""
        self._stopping = True

    def _ending(self) -> bool:
        """Asked to stop, or cancelled: a cancellation that the NATS client swallowed inside one of its
        awaits still ends the loops (the task's `cancelling()` count stays up), never a mirror that
        polls on for ever."""
        task = asyncio.current_task()
        return self._stopping or (task is not None and task.cancelling() > 0)

    async def run(self) -> None:
        reporter = asyncio.create_task(self._report_forever())
        try:
            self._nc = await self._connect()
            if self._nc is None:
                return
            # API requests bounded as acks are: one sent while a cluster elects a leader is never
            # answered, and the default 5 s would hold the mirror up after the election is over
            js = self._nc.jetstream(timeout=self.config.ack_timeout_s)
            streak = 0  # resyncs in a row without progress
            while not self._ending():
                before = self.mirrored_seq
                try:
                    await self._mirror(js)
                except _Resync as exc:
                    self.resyncs += 1
                    streak = 0 if self.mirrored_seq > before else streak + 1
                    persistent = streak >= 8 and streak & (streak - 1) == 0  # say so at 8, 16, 32, ...
                    level = logging.WARNING if persistent else logging.INFO
                    log.log(level, "mirror resynchronizing (%d in a row): %s", streak, exc)
                    await asyncio.sleep(min(0.01 * streak, 1.0))  # a fault that persists is not a busy loop
                    await self._wait_connected()
        except MirrorDiverged as exc:
            self.error = str(exc)
            raise
        except JournalError as exc:
            self.error = f"the journal cannot be read on: {exc}"
            raise MirrorDiverged(self.error) from exc
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            self._write_status()
            if self._nc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._nc.close(), 2)

    async def caught_up(self, timeout: float) -> bool:
        """Whether the stream reaches the journal's last seq within `timeout` (a service that stops asks
        this before it stops its mirror, so its last events leave with it)."""
        last = self.reader.last_seq()
        deadline = time.monotonic() + timeout
        while self.mirrored_seq < last and self.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.mirrored_seq >= last

    async def _connect(self) -> NatsClient | None:
        """Connect, retrying while no server answers (the mirror may start before nats-server)."""
        import nats.errors

        async def disconnected() -> None:
            self.connected = False

        async def reconnected() -> None:
            self.connected = True
            self._reconnects += 1

        warned = False
        while not self._ending():
            try:
                nc = await connect(
                    self.config.nats,
                    f"oms-mirror-{self.stream}",
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                )
            except (OSError, nats.errors.NoServersError, nats.errors.TimeoutError) as exc:
                if not warned:
                    log.warning("no NATS server answers yet (%s); retrying", type(exc).__name__)
                    warned = True
                await asyncio.sleep(0.25)
                continue
            self.connected = True
            return nc
        return None  # asked to stop before any server answered

    async def _wait_connected(self) -> None:
        assert self._nc is not None
        while not self._nc.is_connected and not self._ending():
            await asyncio.sleep(0.02)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """File storage, dedupe by Msg-Id, nothing ever deleted or purged through the API."""
        import nats.errors
        from nats.js.errors import NotFoundError

        try:
            info = await js.stream_info(self.stream)
        except NotFoundError:
            await self._add_stream(js)
            return
        except (TimeoutError, nats.errors.Error) as exc:
            raise _Resync(f"stream info failed: {type(exc).__name__}") from None
        if self.subject not in (info.config.subjects or []):
            raise MirrorDiverged(f"stream {self.stream} exists without subject {self.subject}: not ours")
        if info.config.num_replicas != self.config.replicas and not self._told_replicas:
            self._told_replicas = True  # an operator's choice once it exists: said once, left as it is
            log.warning(
                "stream %s has %s replicas, not the %d configured: left as it is",
                self.stream, info.config.num_replicas, self.config.replicas,
            )  # fmt: skip

    async def _add_stream(self, js: JetStreamContext) -> None:
        """Created once; a cluster without a leader yet is waited for, a refusal stops the mirror."""
        import nats.errors
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
        from nats.js.errors import APIError, ServiceUnavailableError

        try:
            await js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[self.subject],
                    storage=StorageType.FILE,
                    retention=RetentionPolicy.LIMITS,
                    discard=DiscardPolicy.NEW,
                    num_replicas=self.config.replicas,
                    duplicate_window=120.0,
                    allow_direct=True,
                    deny_delete=True,
                    deny_purge=True,
                    description="ib-oms journal mirror: stream sequence = journal seq",
                )
            )
        except APIError as exc:
            if isinstance(exc, ServiceUnavailableError):
                raise _Resync("creating the stream: no JetStream leader answers") from None
            raise StreamRefused(
                f"the server refused to create stream {self.stream} with {self.config.replicas} "
                f"replicas: {exc.description} (JetStream {exc.err_code})"
            ) from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise _Resync(f"creating the stream failed: {type(exc).__name__}") from None

    async def _resume_point(self, js: JetStreamContext) -> int:
        """The stream's last sequence, after checking it against the journal."""
        import nats.errors

        try:
            state = (await js.stream_info(self.stream)).state
        except (TimeoutError, nats.errors.Error) as exc:
            raise _Resync(f"stream info failed: {type(exc).__name__}") from None
        last = state.last_seq
        journal_last = self.reader.last_seq()
        self.journal_seq = max(self.journal_seq, journal_last)
        if last and state.messages != last - state.first_seq + 1:  # aged out at the front is fine
            raise MirrorDiverged(
                f"stream {self.stream} has holes: {state.messages} messages in seqs {state.first_seq}..{last}"
            )
        if last > journal_last:
            raise MirrorDiverged(
                f"stream {self.stream} holds seqs up to {last} but the journal at {self.journal_dir} ends at "
                f"{journal_last}: the journal was cut below what was mirrored (a torn tail recovered, a "
                "restored backup) or it is another journal; not overwriting"
            )
        if last:
            await self._check_same(js, last)
        self.mirrored_seq = last
        return last

    async def _check_same(self, js: JetStreamContext, seq: int) -> None:
        import nats.errors

        try:
            message = await js.get_msg(self.stream, seq)
        except (TimeoutError, nats.errors.Error) as exc:
            raise _Resync(f"reading seq {seq} back failed: {type(exc).__name__}") from None
        ours = next(self.reader.read_payloads(seq, seq), (seq, b""))[1]
        if message.data != ours:
            raise MirrorDiverged(
                f"stream {self.stream} holds different bytes at seq {seq} than the journal at "
                f"{self.journal_dir}: another journal was mirrored there; not overwriting"
            )

    async def _mirror(self, js: JetStreamContext) -> None:
        """Publish from the stream's last sequence + 1 on, for ever (until a _Resync or cancellation)."""
        reconnects = self._reconnects
        await self._ensure_stream(js)
        first = await self._resume_point(js) + 1
        assert self._nc is not None
        publisher = SeqPublisher(self._nc, self.subject, self.config.max_in_flight, self.config.ack_timeout_s)
        await publisher.start(after=first - 1)
        batches: Batches = self.reader.follow_payloads(first, self.config.batch)
        self._following = True
        try:
            while not self._ending():
                batch = next(batches)
                for seq, payload in batch:
                    await publisher.publish(seq, payload)
                if batch:
                    self.journal_seq = max(self.journal_seq, batch[-1][0])
                else:
                    await asyncio.sleep(self.config.poll_s)
                if self._reconnects != reconnects:
                    raise _Resync("reconnected to NATS")
                publisher.check()
                self.mirrored_seq = publisher.acked
            await publisher.drain(1.0)  # a stop in order leaves the status exact
            self.mirrored_seq = publisher.acked
        except PublishFailed as exc:
            raise _Resync(str(exc)) from None
        except StoredElsewhere as exc:
            raise MirrorDiverged(str(exc)) from None
        except asyncio.CancelledError:
            await publisher.drain(1.0)  # a stop in order leaves the status exact
            self.mirrored_seq = publisher.acked
            raise
        finally:
            self._following = False
            batches.close()
            await publisher.close()

    # --- status and snapshot, once per interval -------------------------------------------------

    async def _report_forever(self) -> None:
        while not self._ending():  # a cancellation swallowed inside a NATS await still ends it
            await asyncio.sleep(self.config.status_interval_s)
            try:
                if not self._following:  # NATS is away: the lag still grows with the journal
                    self.journal_seq = max(self.journal_seq, self.reader.last_seq())
                await self._upload_snapshot()
                await self._publish_status()
            except Exception as exc:  # a report that fails is retried next interval, never fatal
                log.warning("mirror status/snapshot: %s: %s", type(exc).__name__, exc)
            self._write_status()
            try:  # after the report: asking the cluster can wait out a leader election
                await self._read_cluster()  # shown in the next report
            except Exception as exc:
                log.warning("mirror cluster info: %s: %s", type(exc).__name__, exc)

    async def _read_cluster(self) -> None:
        """Which node the mirror talks to, and the stream's leader and replicas (what `oms status`
        shows); no leader while none answers."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return
        url = nc.connected_url
        self.server = f"{url.hostname}:{url.port}" if url is not None else ""
        import nats.errors

        try:
            info = await nc.jetstream(timeout=self.config.ack_timeout_s).stream_info(self.stream)
        except (TimeoutError, nats.errors.Error) as exc:  # electing a leader, or no majority
            log.debug("stream info for the status: %s", type(exc).__name__)
            self.leader = ""  # none answers; the replicas stay as last seen
            return
        if info.cluster is None:
            return
        self.cluster = info.cluster.name or ""
        self.leader = info.cluster.leader or ""
        self.replicas = tuple(
            ReplicaStatus(
                name=peer.name or "",
                current=bool(peer.current),
                offline=bool(peer.offline),
                lag=peer.lag or 0,
            )
            for peer in info.cluster.replicas or []
        )

    async def _upload_snapshot(self) -> None:
        """The newest journal snapshot the stream already covers, into the object store (once each)."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return
        covered = [info.seq for info in list_snapshots(self.journal_dir) if info.seq <= self.mirrored_seq]
        if not covered or max(covered) <= self.snapshot_seq:
            return
        found = latest_snapshot(self.journal_dir, self.mirrored_seq)
        if found is None:
            return
        seq, payload = found
        store = await self._snapshot_store(nc.jetstream())
        record = msgspec.msgpack.encode(SnapshotRecord(seq=seq, state=payload))
        from nats.js.api import ObjectMeta

        meta = ObjectMeta(name=SNAPSHOT_OBJECT, description=f"state at seq {seq}")
        await store.put(SNAPSHOT_OBJECT, record, meta=meta)
        self.snapshot_seq = seq

    async def _snapshot_store(self, js: JetStreamContext) -> Any:
        from nats.js.api import ObjectStoreConfig, StorageType
        from nats.js.errors import BucketNotFoundError, NotFoundError

        bucket = snapshot_bucket(self.stream)
        try:
            return await js.object_store(bucket)
        except (BucketNotFoundError, NotFoundError):
            config = ObjectStoreConfig(bucket=bucket, storage=StorageType.FILE, replicas=self.config.replicas)
            return await js.create_object_store(bucket, config=config)

    async def _publish_status(self) -> None:
        nc = self._nc
        if nc is not None and nc.is_connected:
            await nc.publish(status_subject(self.stream), msgspec.json.encode(self.status()))

    def _write_status(self) -> None:
        """DATA_DIR/mirror.json for `oms status`: written whole, then renamed (readers never see half)."""
        if self.status_path is None:
            return
        temp = self.status_path.with_name(f".{self.status_path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(msgspec.json.encode(self.status()))
        os.replace(temp, self.status_path)
