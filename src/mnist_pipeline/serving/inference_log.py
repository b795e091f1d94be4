"""The inference log: every prediction the server makes, as append-only JSON lines in
rotated segments, written off the request path and uploaded to an object store when the path
is one; every record is written or counted as lost (docs/operations.md, "Inference logging").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mnist_pipeline import storage
from mnist_pipeline.image_summaries import image_summaries
from mnist_pipeline.parameters.operations import InferenceLog as InferenceLogSettings
from mnist_pipeline.redaction import redact

logger = logging.getLogger(__name__)

SEGMENT_PREFIX = "inference-"
SEGMENT_SUFFIX = ".jsonl"
LIVE = "live"
REQUEST_ID_HEADER = "X-Request-ID"
SOURCE_HEADER = "X-Traffic-Source"
WARN_EVERY_S = 60.0  # while a failure lasts, a warning at most this often
MAX_UPLOAD_BACKOFF_S = 30.0
_STOP = object()


class InferenceLogError(OSError):
    """The log's folder cannot be created or written (the message names the setting)."""


def _segment_bytes(settings: InferenceLogSettings) -> int:
    """Rotate beyond this: as set, else a sixteenth of the size bound (64 KiB to 8 MiB)."""
    derived = max(64 * 1024, min(8 * 1024 * 1024, settings.max_bytes // 16))
    return settings.max_segment_bytes or derived


def local_folder(settings: InferenceLogSettings) -> Path:
    """The folder the log writes its segments to (the path itself, or the spool folder of a
    remote path), created.

    Raises:
        InferenceLogError: it cannot be created or written, naming the setting.
    """
    if storage.is_local(settings.path):
        folder = Path(settings.path.removeprefix("file://"))
        what = "folder (inference_log.path, MNIST_INFERENCE_LOG)"
    else:
        digest = hashlib.sha256(settings.path.encode()).hexdigest()[:16]
        default = Path(tempfile.gettempdir()) / "mnist-inference-spool" / digest
        folder = Path(settings.spool_dir) if settings.spool_dir else default
        what = "spool folder (inference_log.spool_dir)"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise InferenceLogError(
            f"cannot use {folder} as the inference log's {what}: {exc.strerror or exc}"
        ) from None
    return folder


@dataclass
class _Batch:
    time: float
    request_id: str
    source: str
    images: np.ndarray
    probabilities: np.ndarray
    latency_ms: float


DRAIN_MAX = 256  # requests written per wake-up of the writer thread, at most
# After the first record of a burst, the writer waits this long before it drains the queue:
# it then wakes a few dozen times a second under load, not once per request, and takes the
# interpreter from the request path that much less often (records reach the disk this much
# later; flush() and close() wait for them as before).
WRITE_LINGER_S = 0.02


class _RequestIds:
    """Random request ids (32 hex digits, like ``uuid4().hex``), drawn from the OS 256 at a
    time: one ``getrandom`` call per 256 requests instead of one per request."""

    def __init__(self, per_draw: int = 256) -> None:
        self._per_draw = per_draw
        self._pool = b""
        self._next = 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)  # a child never repeats the parent's

    def _forget(self) -> None:
        self._pool, self._next = b"", 0

    def new(self) -> str:
        with self._lock:
            if self._next >= len(self._pool):
                self._pool, self._next = os.urandom(16 * self._per_draw), 0
            start = self._next
            self._next += 16
            return self._pool[start : start + 16].hex()


def _is_control(item: Any) -> bool:
    """A stop or flush request (not a batch of records)."""
    return item is _STOP or isinstance(item, threading.Event)


def _writer_pid(path: Path) -> int | None:
    """The pid in ``inference-<start>-<pid>-<n>.jsonl``."""
    parts = path.name.removesuffix(SEGMENT_SUFFIX).split("-")
    return int(parts[-2]) if len(parts) >= 4 and parts[-2].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lines_in(path: Path) -> int:
    with contextlib.suppress(OSError), path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Trouble:
    """One kind of failure (writing, uploading): warned when it starts, at most every
    :data:`WARN_EVERY_S` while it lasts, and when it ends with the records lost meanwhile."""

    def __init__(self, doing: str) -> None:
        self.doing = doing  # "write to /srv/log", "upload to gs://bucket/log"
        self.since: float | None = None
        self._warned = 0.0
        self._lost_before = 0

    def failed(self, error: str, lost: int, newly_lost: int = 0) -> None:
        """``lost``: the log's lost records so far, ``newly_lost`` of them by this failure."""
        now = time.monotonic()
        if self.since is None:
            self.since, self._warned, self._lost_before = now, now, lost - newly_lost
            logger.warning(
                "inference log: cannot %s: %s. Retrying on its own; records that cannot be "
                "kept are counted as lost in the status route (inference_log)",
                self.doing,
                error,
            )
        elif now - self._warned >= WARN_EVERY_S:
            self._warned = now
            logger.warning(
                "inference log: still cannot %s after %.0f s (%s); %d records lost so far",
                self.doing,
                now - self.since,
                error,
                lost - self._lost_before,
            )

    def recovered(self, lost: int) -> None:
        if self.since is None:
            return
        logger.warning(
            "inference log: could %s again after %.0f s; %d records were lost meanwhile",
            self.doing,
            time.monotonic() - self.since,
            lost - self._lost_before,
        )
        self.since = None


class InferenceLog:
    """The writer: ``record(...)`` from the request path, ``status()``, ``close()``."""

    def __init__(self, settings: InferenceLogSettings, model_info: dict[str, Any]) -> None:
        self.settings = settings
        self.model_name = str(model_info.get("name", "model"))
        self.model_version = str(model_info.get("version", ""))
        self.received = 0  # records handed to record()
        self.records = 0  # whole lines written to a local segment
        self.dropped = 0  # queue full
        self.write_lost = 0  # the disk refused them
        self.evicted = 0  # written, then deleted by the size bound
        self.unwritten_at_close = 0  # still queued when close() gave up
        self.uploaded = 0
        self.adopted = 0  # records of segments a stopped server left in the spool folder
        self.write_errors = 0
        self.upload_errors = 0
        self.segments_closed = 0
        self.segments_uploaded = 0
        self.segments_deleted = 0
        self.last_error = ""
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, settings.queue_size))
        self._random = random.Random(0)
        self._request_ids = _RequestIds()
        self._folder = local_folder(settings)
        shown = redact(settings.path, settings.storage_options)
        self._writing = _Trouble(f"write to {self._folder}")
        self._uploading = _Trouble(f"upload to {shown}")
        self._spooling = _Trouble(f"keep every segment not yet uploaded in {self._folder}")
        # Closed segments not uploaded or deleted yet → their records (ours and adopted ones);
        # shared by the writer (closes, evicts) and the uploader (uploads) under the lock.
        self._lock = threading.Lock()
        self._closed: dict[str, int] = {}
        self._in_flight: str | None = None  # the segment being uploaded (never evicted)
        self._fd: int | None = None
        self._segment: Path | None = None
        self._size = 0
        self._segment_records = 0
        self._segment_started = 0.0
        self._sequence = 0
        self._wake_uploader = threading.Event()
        self._stop_uploads = threading.Event()
        self._close_deadline = 0.0
        self.remote = not storage.is_local(settings.path)
        if self.remote:
            self._adopt_leftovers()
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()
        self._uploader: threading.Thread | None = None
        if self.remote:
            self._uploader = threading.Thread(
                target=self._upload_loop, name="inference-log-upload", daemon=True
            )
            self._uploader.start()

    # ── request path: O(1), never blocks ──────────────────────────────────────
    def record(
        self,
        images: np.ndarray,
        probabilities: np.ndarray,
        latency_s: float,
        request_id: str,
        source: str = LIVE,
    ) -> bool:
        """Queue one request's predictions; False (and counted) if the queue is full."""
        batch = _Batch(time.time(), request_id, source, images, probabilities, latency_s * 1000)
        self.received += len(probabilities)
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.dropped += len(probabilities)
            return False
        return True

    def log_request(
        self,
        headers: Any,
        images: np.ndarray,
        probabilities: np.ndarray,
        started: float,
        response: Any,
    ) -> None:
        """Record an answered request (called by the app); echo its ``X-Request-ID``.

        The request id is the client's ``X-Request-ID`` header or a new one; the source
        is the ``X-Traffic-Source`` header (``live`` when absent).
        """
        request_id = str(headers.get(REQUEST_ID_HEADER) or self._request_ids.new())[:128]
        source = str(headers.get(SOURCE_HEADER) or LIVE)[:32]
        self.record(images, probabilities, time.perf_counter() - started, request_id, source)
        response.headers[REQUEST_ID_HEADER] = request_id

    @property
    def lost(self) -> int:
        """Records that are not in the log: dropped, refused by the disk, evicted, unwritten."""
        return self.dropped + self.write_lost + self.evicted + self.unwritten_at_close

    def status(self) -> dict[str, Any]:
        """Counters for the status route: no path or URI (the server's log names it)."""
        with self._lock:
            pending = sum(self._closed.values()) + self._segment_records
        status = {
            "destination": "object store" if self.remote else "local folder",
            "received": self.received,
            "records": self.records,
            "lost": self.lost,
            "dropped": self.dropped,
            "write_lost": self.write_lost,
            "evicted": self.evicted,
            "unwritten_at_close": self.unwritten_at_close,
            "queued": self._queue.qsize(),
            "write_errors": self.write_errors,
            "segments_closed": self.segments_closed,
            "segments_deleted": self.segments_deleted,
            "failing": [
                t.doing.split(" ")[0]
                for t in (self._writing, self._uploading, self._spooling)
                if t.since
            ],
            "last_error": self.last_error,
        }
        if self.remote:
            status.update(
                uploaded=self.uploaded,
                pending_upload=pending,
                adopted=self.adopted,
                upload_errors=self.upload_errors,
                segments_uploaded=self.segments_uploaded,
            )
        return status

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued record is written (or counted as lost)."""
        done = threading.Event()
        self._queue.put(done, timeout=timeout_s)
        done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, close the open segment, upload what is pending, stop.

        Within ``timeout_s`` in all. Records still queued after it are counted as lost
        (``unwritten_at_close``); segments not uploaded stay in the spool folder, named in a
        warning, for the next server with this spool folder to upload.
        """
        deadline = time.monotonic() + timeout_s
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=timeout_s)
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            unwritten = 0
            with contextlib.suppress(queue.Empty):
                while True:
                    item = self._queue.get_nowait()
                    if isinstance(item, _Batch):
                        unwritten += len(item.probabilities)
            self.unwritten_at_close += unwritten
            logger.warning(
                "inference log: the writer did not finish within %g s: %d queued records were "
                "not written (counted as lost)",
                timeout_s,
                unwritten,
            )
        if self._uploader is not None:
            self._close_deadline = deadline
            self._stop_uploads.set()
            self._wake_uploader.set()
            self._uploader.join(max(0.0, deadline - time.monotonic()))
            with self._lock:
                pending, segments = sum(self._closed.values()), len(self._closed)
            if segments:
                logger.warning(
                    "inference log: %d records in %d segments were not uploaded to %s before "
                    "the server stopped (%s); they stay in %s, and the next server with this "
                    "spool folder uploads them",
                    pending,
                    segments,
                    redact(self.settings.path, self.settings.storage_options),
                    self.last_error or "no time left",
                    self._folder,
                )

    # ── writer thread ─────────────────────────────────────────────────────────
    def _run(self) -> None:
        while True:
            try:
                items = [self._queue.get(timeout=1.0)]
            except queue.Empty:
                items = []
            if items and not _is_control(items[0]):
                time.sleep(WRITE_LINGER_S)
            # Everything queued meanwhile is written in one go (one write): under load the
            # thread wakes once per burst of requests, not once per request, and takes the
            # interpreter from the request path less often.
            while items and len(items) < DRAIN_MAX and not _is_control(items[-1]):
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            control = items.pop() if items and _is_control(items[-1]) else None
            if items:
                self._write(items)
            try:
                self._maybe_rotate()
            except Exception as exc:  # a vanished file, a failed stat: keep serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("inference log: %s", self.last_error)
            if control is _STOP:
                self._close_segment()
                return
            if isinstance(control, threading.Event):
                control.set()

    def _lines(self, batches: list[_Batch]) -> bytes:
        """The JSON lines of ``batches``, one per image.

        The predictions and image summaries of all of them are computed at once: under load
        the writer drains many single-image requests per wake-up, and per-request numpy
        calls cost about 45 µs each of the interpreter the request path also needs.
        """
        if len(batches) == 1:
            images, probabilities = batches[0].images, batches[0].probabilities
        else:
            images = np.concatenate([batch.images for batch in batches])
            probabilities = np.concatenate([batch.probabilities for batch in batches])
        probabilities = np.asarray(probabilities, dtype=np.float32)
        digits = probabilities.argmax(axis=1).tolist()
        tops = probabilities.max(axis=1).tolist()
        summaries = {name: values.tolist() for name, values in image_summaries(images).items()}
        rate = self.settings.pixels_sample_rate
        lines = []
        index = 0
        for batch in batches:
            stamp = datetime.fromtimestamp(batch.time, UTC).isoformat()
            size = len(batch.probabilities)
            latency_ms = round(batch.latency_ms, 3)
            for within in range(size):
                line = {
                    "time": stamp,
                    "request_id": batch.request_id,
                    "source": batch.source,
                    "model_name": self.model_name,
                    "model_version": self.model_version,
                    "digit": digits[index],
                    "probability": round(tops[index], 6),
                    "latency_ms": latency_ms,
                    "batch_size": size,
                    **{name: values[index] for name, values in summaries.items()},
                }
                if rate and self._random.random() < rate:
                    pixels = np.asarray(batch.images[within], dtype=np.float32).reshape(-1)
                    line["pixels"] = np.rint(pixels).astype(np.uint8).tolist()
                lines.append(orjson.dumps(line))
                index += 1
        return b"\n".join(lines) + b"\n"

    def _write(self, batches: list[_Batch]) -> None:
        """Append the batches' lines in one write; on failure, count them lost (never raise).

        A write the disk cuts short (full, read-only) is truncated away and the segment is
        closed, so every counted record is a whole line on disk; the next batch opens a new
        segment, which is how the log resumes once the disk takes writes again.
        """
        count = sum(len(batch.probabilities) for batch in batches)
        try:
            data = self._lines(batches)
            if self._fd is None:
                self._open_segment()
            _write_all(self._fd, data)  # type: ignore[arg-type]
        except Exception as exc:
            self._close_segment(truncate=True)
            self.write_lost += count
            self.write_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._writing.failed(self.last_error, self.lost, count)
            return
        self._size += len(data)
        self._segment_records += count
        self.records += count
        self._writing.recovered(self.lost)

    def _open_segment(self) -> None:
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{SEGMENT_PREFIX}{stamp}-{os.getpid()}-{self._sequence:04d}{SEGMENT_SUFFIX}"
        segment = self._folder / name
        self._fd = os.open(segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segment, self._size, self._segment_records = segment, 0, 0
        self._segment_started = time.monotonic()

    def _maybe_rotate(self) -> None:
        if self._fd is None:
            return
        if self._size >= _segment_bytes(self.settings) or (
            time.monotonic() - self._segment_started >= self.settings.max_segment_age_s
        ):
            self._close_segment()
            self._enforce_bound()

    def _close_segment(self, truncate: bool = False) -> None:
        """Close the open segment (``truncate``: back to its last whole line first)."""
        fd, segment = self._fd, self._segment
        if fd is None or segment is None:
            return
        if truncate:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
        with contextlib.suppress(OSError):
            os.close(fd)
        self._fd, self._segment = None, None
        if self._size == 0:
            with contextlib.suppress(OSError):
                segment.unlink()
        else:
            with self._lock:
                self._closed[segment.name] = self._segment_records
            self.segments_closed += 1
            self._wake_uploader.set()
        self._size = self._segment_records = 0

    def _segments(self) -> list[Path]:
        """Closed segments of this server and of stopped ones, oldest first (never the open
        one, never those of another running server writing to the same folder)."""
        pid = os.getpid()
        found = []
        for path in self._folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
            writer = _writer_pid(path)
            if path != self._segment and (writer == pid or writer is None or not _alive(writer)):
                found.append(path)
        return sorted(found)

    def _enforce_bound(self) -> None:
        with self._lock:
            closed = [path for path in self._segments() if path.name != self._in_flight]
            sizes = {path: path.stat().st_size for path in closed}
            total = sum(sizes.values()) + self._size
            while closed and total > self.settings.max_bytes:
                oldest = closed.pop(0)
                records = self._closed.pop(oldest.name, 0)  # 0: an earlier server's segment
                oldest.unlink(missing_ok=True)
                total -= sizes[oldest]
                self.segments_deleted += 1
                self.evicted += records
                if self.remote and records:
                    self.last_error = (
                        f"the spool folder is over its bound of {self.settings.max_bytes:,}"
                        f" bytes: deleted {oldest.name} ({records} records not uploaded)"
                    )
                    self._spooling.failed(self.last_error, self.lost, records)

    # ── uploader thread (remote logs only) ────────────────────────────────────
    def _adopt_leftovers(self) -> None:
        """Segments a stopped server left in the spool folder: uploaded like our own."""
        for path in self._segments():
            records = _lines_in(path)
            self._closed[path.name] = records
            self.adopted += records
        if self._closed:
            logger.info(
                "inference log: %d records in %d segments left in %s by a stopped server "
                "are uploaded first",
                self.adopted,
                len(self._closed),
                self._folder,
            )

    def _upload_loop(self) -> None:
        backoff = 0.0
        while True:
            self._wake_uploader.wait(timeout=backoff or None)
            self._wake_uploader.clear()
            done = self._upload_pending()
            # The store is down or refuses: try again later, less and less often.
            backoff = 0.0 if done else min(max(1.0, backoff * 2), MAX_UPLOAD_BACKOFF_S)
            if self._stop_uploads.is_set():  # close(): keep trying until its deadline
                left = self._close_deadline - time.monotonic()
                if done or left <= 0:
                    return
                backoff = max(0.05, min(1.0, left))

    def _upload_pending(self) -> bool:
        """Upload the closed segments, oldest first; False at the first that fails."""
        while True:
            with self._lock:
                if not self._closed:
                    self._spooling.recovered(self.lost)  # the spool is empty again
                    return True
                name = min(self._closed)
                records = self._closed[name]
                self._in_flight = name
            segment = self._folder / name
            target = storage.join(self.settings.path, name)
            try:
                with storage.storage_errors(
                    target,
                    "inference_log.path and its storage options",
                    self.settings.storage_options,
                    action="upload to",
                ):
                    storage.upload(segment, target, self.settings.storage_options)
            except Exception as exc:
                with self._lock:
                    self._in_flight = None
                self.upload_errors += 1
                self.last_error = str(exc) if isinstance(exc, OSError) else repr(exc)
                self._uploading.failed(self.last_error, self.lost)
                return False
            with self._lock:
                self._in_flight = None
                self._closed.pop(name, None)
                segment.unlink(missing_ok=True)
                self.segments_uploaded += 1
                self.uploaded += records
            self._uploading.recovered(self.lost)


def open_inference_log(
    settings: InferenceLogSettings, model_info: dict[str, Any]
) -> InferenceLog | None:
    """The log the ``inference_log`` settings ask for, or None when their path is empty.

    Raises:
        InferenceLogError: its folder cannot be created or written.
    """
    if not settings.path:
        return None
    log = InferenceLog(settings, model_info)
    logger.info("Logging predictions to %s", redact(settings.path, settings.storage_options))
    return log
