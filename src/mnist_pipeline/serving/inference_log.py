"""The inference log: every prediction the server makes, as append-only JSON lines.

One line per image::

    {"time": "2026-11-30T01:02:03.456789+00:00", "request_id": "9f0c…", "source": "live",
     "model_name": "mnist_cnn", "model_version": "3", "digit": 7, "probability": 0.998,
     "latency_ms": 2.41, "batch_size": 1, "mean_intensity": 0.13, "ink_fraction": 0.09,
     "bbox_height": 20.0, "bbox_width": 14.0}

plus ``"pixels"`` (784 integers) for a sampled share of images when
``pixels_sample_rate`` > 0 (raw pixels are opt-in).

**Never blocks a response.** The request handler only puts references to arrays it
already holds on a bounded queue (``put_nowait``); a background thread computes the
per-image summaries (:mod:`mnist_pipeline.monitoring.summaries`), encodes and writes.
When the queue is full (a slow or stuck sink) the record is dropped and counted; the
status route shows the counters.

**Segments.** The log is a folder of segments ``inference-<start>-<n>.jsonl``. The open
segment is closed (rotated) when it reaches ``max_segment_bytes`` or
``max_segment_age_s``. For a local folder the segments are written in place; for an
object store (``gs://``, ``abfs://``…, which cannot append) they are written to a
local spool folder and each closed segment is uploaded through fsspec, then removed
locally. **Size bound:** when the local segments exceed ``max_total_bytes``, the
oldest closed ones are deleted (and counted).

**Deploy's validation traffic** is not live traffic: the deploy pipeline validates in its
own server process, which runs without a log; a request with the header
``X-Traffic-Source: validation`` (or any other value) to a logging server is logged
with that ``source``, and monitoring reads ``source == "live"`` only.
"""

from __future__ import annotations

import logging
import os
import posixpath
import queue
import random
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mnist_pipeline.monitoring.summaries import image_summaries

logger = logging.getLogger(__name__)

SEGMENT_PREFIX = "inference-"
SEGMENT_SUFFIX = ".jsonl"
LIVE = "live"
REQUEST_ID_HEADER = "X-Request-ID"
SOURCE_HEADER = "X-Traffic-Source"
_STOP = object()


@dataclass(frozen=True)
class InferenceLogSettings:
    """Where and how the server logs (``inference_log`` in ``parameters_inference_log.yml``).

    Attributes:
        path: a folder or URI (``gs://bucket/inference``); empty: no log.
        max_segment_bytes / max_segment_age_s: rotate the open segment after either.
        max_total_bytes: local segments beyond this are deleted, oldest first.
        queue_size: records waiting for the writer; beyond it they are dropped.
        pixels_sample_rate: share of images logged with their raw pixels (0: none).
        spool_dir: local folder for segments of a remote ``path`` (default: a temp folder).
        storage_options: fsspec options for a remote ``path`` (no secrets).
    """

    path: str = ""
    max_segment_bytes: int = 8 * 1024 * 1024
    max_segment_age_s: float = 300.0
    max_total_bytes: int = 512 * 1024 * 1024
    queue_size: int = 10_000
    pixels_sample_rate: float = 0.0
    spool_dir: str = ""
    storage_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> InferenceLogSettings:
        known = {f.name: f.type for f in fields(cls)}
        values = {key: value for key, value in (params or {}).items() if key in known}
        for key in ("max_segment_bytes", "max_total_bytes", "queue_size"):
            if key in values:
                values[key] = int(values[key])
        for key in ("max_segment_age_s", "pixels_sample_rate"):
            if key in values:
                values[key] = float(values[key])
        values["path"] = str(values.get("path") or "")
        values["spool_dir"] = str(values.get("spool_dir") or "")
        values["storage_options"] = dict(values.get("storage_options") or {})
        settings = cls(**values)
        if not 0.0 <= settings.pixels_sample_rate <= 1.0:
            raise ValueError(
                "inference_log.pixels_sample_rate must be in [0, 1], found "
                f"{settings.pixels_sample_rate}"
            )
        return settings

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    @property
    def remote(self) -> bool:
        return "://" in self.path and not self.path.startswith("file://")


@dataclass
class _Batch:
    time: float
    request_id: str
    source: str
    images: np.ndarray
    probabilities: np.ndarray
    latency_ms: float


DRAIN_MAX = 256  # requests written per wake-up of the writer thread, at most


def _is_control(item: Any) -> bool:
    """A stop or flush request (not a batch of records)."""
    return item is _STOP or isinstance(item, threading.Event)


class InferenceLog:
    """The writer: ``record(...)`` from the request path, ``status()``, ``close()``."""

    def __init__(self, settings: InferenceLogSettings, model_info: dict[str, Any]) -> None:
        self.settings = settings
        self.model_name = str(model_info.get("name", "model"))
        self.model_version = str(model_info.get("version", ""))
        self.records = 0
        self.dropped = 0
        self.write_errors = 0
        self.segments_closed = 0
        self.segments_uploaded = 0
        self.segments_deleted = 0
        self.last_error = ""
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, settings.queue_size))
        self._random = random.Random(0)
        if settings.remote:
            self._folder = Path(
                settings.spool_dir or tempfile.mkdtemp(prefix="mnist-inference-spool-")
            )
        else:
            self._folder = Path(settings.path.removeprefix("file://"))
        self._folder.mkdir(parents=True, exist_ok=True)
        self._handle: Any = None
        self._segment: Path | None = None
        self._segment_started = 0.0
        self._sequence = 0
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

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
        request_id = str(headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex)[:128]
        source = str(headers.get(SOURCE_HEADER) or LIVE)[:32]
        self.record(images, probabilities, time.perf_counter() - started, request_id, source)
        response.headers[REQUEST_ID_HEADER] = request_id

    def status(self) -> dict[str, Any]:
        """Counters for the status route: no path or URI (the server's log names it)."""
        return {
            "destination": "object store" if self.settings.remote else "local folder",
            "records": self.records,
            "dropped": self.dropped,
            "queued": self._queue.qsize(),
            "write_errors": self.write_errors,
            "segments_closed": self.segments_closed,
            "segments_uploaded": self.segments_uploaded,
            "segments_deleted": self.segments_deleted,
            "last_error": self.last_error,
        }

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued record is written and the open segment flushed."""
        done = threading.Event()
        self._queue.put(done, timeout=timeout_s)
        done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, close (and upload) the open segment, stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)

    # ── writer thread ─────────────────────────────────────────────────────────
    def _run(self) -> None:
        while True:
            try:
                items = [self._queue.get(timeout=1.0)]
            except queue.Empty:
                items = []
            # Everything queued meanwhile is written in one go (one write, one flush): under
            # load the thread wakes once per burst of requests, not once per request, and
            # takes the interpreter from the request path less often.
            while items and len(items) < DRAIN_MAX and not _is_control(items[-1]):
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            control = items.pop() if items and _is_control(items[-1]) else None
            try:
                if items:
                    self._write(items)
                    if self._queue.empty():  # idle: make what was written readable now
                        self._handle.flush()
                self._maybe_rotate()
            except Exception as exc:  # a full disk, a failed upload: count, keep serving
                self.write_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("inference log: %s", self.last_error)
            if control is _STOP:
                self._close_segment()
                self._upload_closed()
                return
            if isinstance(control, threading.Event):
                if self._handle is not None:
                    self._handle.flush()
                control.set()

    def _lines(self, batch: _Batch) -> bytes:
        probabilities = np.asarray(batch.probabilities, dtype=np.float32)
        digits = probabilities.argmax(axis=1)
        tops = probabilities.max(axis=1)
        summaries = image_summaries(batch.images)
        stamp = datetime.fromtimestamp(batch.time, UTC).isoformat()
        rate = self.settings.pixels_sample_rate
        lines = []
        for index in range(len(probabilities)):
            line = {
                "time": stamp,
                "request_id": batch.request_id,
                "source": batch.source,
                "model_name": self.model_name,
                "model_version": self.model_version,
                "digit": int(digits[index]),
                "probability": round(float(tops[index]), 6),
                "latency_ms": round(batch.latency_ms, 3),
                "batch_size": len(probabilities),
                **{name: float(values[index]) for name, values in summaries.items()},
            }
            if rate and self._random.random() < rate:
                pixels = np.asarray(batch.images[index], dtype=np.float32).reshape(-1)
                line["pixels"] = np.rint(pixels).astype(np.uint8).tolist()
            lines.append(orjson.dumps(line))
        return b"\n".join(lines) + b"\n"

    def _write(self, batches: list[_Batch]) -> None:
        if self._handle is None:
            self._open_segment()
        self._handle.write(b"".join(self._lines(batch) for batch in batches))
        self.records += sum(len(batch.probabilities) for batch in batches)

    def _open_segment(self) -> None:
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{SEGMENT_PREFIX}{stamp}-{os.getpid()}-{self._sequence:04d}{SEGMENT_SUFFIX}"
        self._segment = self._folder / name
        self._handle = open(self._segment, "ab", buffering=256 * 1024)  # noqa: SIM115
        self._segment_started = time.monotonic()

    def _maybe_rotate(self) -> None:
        if self._handle is None:
            return
        if self._handle.tell() >= self.settings.max_segment_bytes or (
            time.monotonic() - self._segment_started >= self.settings.max_segment_age_s
        ):
            self._close_segment()
            self._upload_closed()
            self._enforce_bound()

    def _close_segment(self) -> None:
        if self._handle is None:
            return
        self._handle.close()
        self._handle, self._segment = None, None
        self.segments_closed += 1

    def _closed_segments(self) -> list[Path]:
        current = self._segment
        return sorted(
            path
            for path in self._folder.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}")
            if path != current
        )

    def _upload_closed(self) -> None:
        if not self.settings.remote:
            return
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(self.settings.path, **self.settings.storage_options)
        for path in self._closed_segments():
            fs.put_file(str(path), posixpath.join(root, path.name))
            path.unlink()
            self.segments_uploaded += 1

    def _enforce_bound(self) -> None:
        closed = self._closed_segments()
        total = sum(path.stat().st_size for path in closed)
        if self._segment is not None and self._segment.exists():
            total += self._segment.stat().st_size
        while closed and total > self.settings.max_total_bytes:
            oldest = closed.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink()
            self.segments_deleted += 1


def open_inference_log(settings: Any, model_info: dict[str, Any]) -> InferenceLog | None:
    """The log the server's settings ask for, or None when ``inference_log`` is empty.

    Args:
        settings: a :class:`~.server.ServerSettings` (``inference_log``,
            ``inference_log_pixels``, ``inference_log_max_bytes``) or a mapping of
            :class:`InferenceLogSettings` fields.
    """
    if isinstance(settings, dict):
        params = settings
    else:
        max_bytes = int(settings.inference_log_max_bytes)
        params = {
            "path": settings.inference_log,
            "pixels_sample_rate": settings.inference_log_pixels,
            "max_total_bytes": max_bytes,
            "max_segment_bytes": max(64 * 1024, min(8 * 1024 * 1024, max_bytes // 16)),
        }
    log_settings = InferenceLogSettings.from_params(params)
    if not log_settings.enabled:
        return None
    from mnist_pipeline.registry.config import redact_uri

    log = InferenceLog(log_settings, model_info)
    logger.info("Logging predictions to %s", redact_uri(log_settings.path))
    return log
