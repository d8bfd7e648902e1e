"""Prometheus metrics, named in the spirit of Triton's (success/failure counts, queue/compute/
end-to-end duration histograms), plus what is particular to VR: frames dropped as stale, frames
answered late, active streams. One registry per server so tests can run several servers."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from vr_recognition.server import protocol as p

# Buckets from 0.5 ms to 2 s: a 90 Hz frame budget is 11.1 ms, CPU inference is ~50 ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.011, 0.016, 0.025, 0.04, 0.06, 0.1,
                   0.16, 0.25, 0.5, 1.0, 2.0)  # fmt: skip


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.success = Counter("vr_inference_request_success", "Frames answered with status ok", registry=r)
        self.failure = Counter(
            "vr_inference_request_failure", "Frames or messages answered with an error", ["code"], registry=r
        )
        self.dropped_stale = Counter(
            "vr_frames_dropped_stale", "Frames replaced by a newer frame of their stream before processing",
            registry=r,
        )  # fmt: skip
        self.late = Counter("vr_frames_late", "Frames past their deadline before inference", registry=r)
        self.decode_duration = Histogram(
            "vr_decode_duration_seconds", "Image decode, resize and crop", buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_duration = Histogram(
            "vr_queue_duration_seconds", "Wait for a batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.compute_duration = Histogram(
            "vr_compute_infer_duration_seconds", "Model run per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.request_duration = Histogram(
            "vr_request_duration_seconds",
            "Server time per answered frame, message in hand to reply ready",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "vr_batch_size", "Frames per inference batch", buckets=(1, 2, 4, 8, 16, 32, 64), registry=r
        )
        self.active_streams = Gauge("vr_active_streams", "Open streams (after hello)", registry=r)
        self.connections = Counter("vr_connections", "Accepted websocket connections", registry=r)
        self.refused = Counter("vr_connections_refused", "Handshakes refused", ["code"], registry=r)
        self.model_reloads = Counter("vr_model_reloads", "Hot reload attempts", ["result"], registry=r)
        # Leak watch: memory, descriptors (process_*), event-loop tasks and threads must not grow.
        ProcessCollector(registry=r)
        Gauge("vr_event_loop_tasks", "asyncio tasks alive (read at scrape time)", registry=r).set_function(
            _task_count
        )
        Gauge("vr_threads", "Python threads alive", registry=r).set_function(threading.active_count)
        self.model_info = Gauge(
            "vr_model_info", "The model being served (value 1)", ["name", "version", "provider"], registry=r
        )

    def record(self, message: p.ServerMessage) -> None:
        """Count one message sent to a client. Every answer passes here, with its timings, so this is
        the one place where frames and errors are counted."""
        if isinstance(message, p.ErrorMessage):
            self.failure.labels(message.code).inc()
            return
        if not isinstance(message, p.Result):
            return
        timings = message.timings_ms
        if "decode" in timings:
            self.decode_duration.observe(timings["decode"] / 1000.0)
        if "queue" in timings:
            self.queue_duration.observe(timings["queue"] / 1000.0)
        if message.status is p.Status.OK:
            self.success.inc()
            self.request_duration.observe(timings["total"] / 1000.0)
        elif message.status is p.Status.LATE:
            self.late.inc()
        elif message.status is p.Status.DROPPED_STALE:
            self.dropped_stale.inc()
        elif message.error is not None:
            self.failure.labels(message.error.code).inc()

    def record_batch(self, size: int, infer_s: float) -> None:
        """One inference batch ran (the batcher's callback)."""
        self.batch_size.observe(size)
        self.compute_duration.observe(infer_s)

    def set_model(self, name: str, version: str, provider: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name, version, provider).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped from outside the event loop
        return float("nan")
