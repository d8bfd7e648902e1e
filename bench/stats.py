"""From per-frame records to the numbers a headset user feels: latency, misses, throughput, age.

Everything is computed from one run's records, so every ratio and count in a report comes from the
same frames. Percentiles use numpy's default (linear interpolation).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from vr_recognition.bench.records import CLIENT_SKIPPED, LoadRun, StreamRecord

PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
COUNT_KEYS = (
    "scheduled", "sent", "answered", "dropped_stale", "late", "errors", "unanswered", "client_skipped",
)  # fmt: skip
STAGES = ("receive", "decode", "queue", "infer", "post")


def percentiles(values_ms: np.ndarray | list[float], keys: tuple[str, ...] = tuple(PERCENTILES)) -> dict:
    """{p50, p90, ..., max} in ms rounded to µs; None everywhere when there are no samples."""
    values = np.asarray(values_ms, dtype=np.float64)
    values = values[np.isfinite(values)]
    out: dict[str, float | None] = {}
    for key in keys:
        out[key] = round(float(np.percentile(values, PERCENTILES[key])), 3) if values.size else None
    out["max"] = round(float(values.max()), 3) if values.size else None
    return out


def p50(values: list[float]) -> float | None:
    return round(float(np.percentile(values, 50)), 3) if values else None


@dataclass
class Summary:
    report: dict  # the JSON-ready numbers
    e2e_ms: np.ndarray  # every measured ok frame's latency, for CDF plots


def _measured(record: StreamRecord, first: int) -> StreamRecord:
    return StreamRecord(
        record.scheduled[first:],
        record.sent[first:],
        record.answered[first:],
        record.status[first:],
        record.timings_ms[first:],
        record.failure,
        record.first_frame + first,
        record.labels[first:],
    )


def answer_age_ms(record: StreamRecord, first_tick: int) -> np.ndarray:
    """At each display tick (a scheduled send time from `first_tick` on), how old is the newest answer?

    age(tick) = tick − scheduled time of the newest frame (latest scheduled) answered ok at or before
    the tick. Ticks before the stream's first ok answer have no age and are left out.
    """
    ok = np.array([s == "ok" for s in record.status], dtype=bool) & np.isfinite(record.answered)
    if not ok.any():
        return np.empty(0)
    order = np.argsort(record.answered[ok], kind="stable")
    answered_at = record.answered[ok][order]
    newest_scheduled = np.maximum.accumulate(record.scheduled[ok][order])
    ticks = record.scheduled[first_tick:]
    known = np.searchsorted(answered_at, ticks, side="right") - 1  # last answer at or before each tick
    has_answer = known >= 0
    return (ticks[has_answer] - newest_scheduled[known[has_answer]]) * 1000.0


def longest_answer_gap_ms(run: LoadRun) -> float | None:
    """The longest time any stream waited between two ok answers (warm-up included: a reconnect can
    fall anywhere), or None when no stream had two."""
    gaps = []
    for record in run.streams:
        answered = np.sort(record.answered[[s == "ok" for s in record.status]])
        answered = answered[np.isfinite(answered)]
        if answered.size >= 2:
            gaps.append(float(np.diff(answered).max()) * 1000.0)
    return round(max(gaps), 3) if gaps else None


def summarize(run: LoadRun) -> Summary:
    config = run.config
    counts = dict.fromkeys(COUNT_KEYS, 0)
    e2e_all, per_stream_ok, stage_values, outside, send_lag, ages = [], [], {}, [], [], []
    from_sent, ok_lag = [], []
    within_budget = 0
    for full in run.streams:
        record = _measured(full, run.measured_from)
        sent = np.isfinite(record.sent)
        statuses = np.array([s or "" for s in record.status], dtype=object)
        ok = (statuses == "ok") & sent
        latency_ms = (record.answered - record.scheduled) * 1000.0
        counts["scheduled"] += len(record.scheduled)
        counts["sent"] += int(sent.sum())
        counts["answered"] += int(ok.sum())
        counts["dropped_stale"] += int(((statuses == "dropped_stale") & sent).sum())
        counts["late"] += int(((statuses == "late") & sent).sum())
        counts["errors"] += int(((statuses == "error") & sent).sum())
        counts["unanswered"] += int((sent & (statuses == "")).sum())
        counts["client_skipped"] += int((statuses == CLIENT_SKIPPED).sum())
        per_stream_ok.append(int(ok.sum()))
        e2e_all.append(latency_ms[ok])
        within_budget += int((latency_ms[ok] <= config.budget_ms).sum())
        send_lag.append((record.sent[sent] - record.scheduled[sent]) * 1000.0)
        from_sent.append((record.answered[ok] - record.sent[ok]) * 1000.0)
        ok_lag.append((record.sent[ok] - record.scheduled[ok]) * 1000.0)
        for index in np.flatnonzero(ok):
            timings = record.timings_ms[index] or {}
            for stage in (*STAGES, "total"):
                if stage in timings:
                    stage_values.setdefault(stage, []).append(timings[stage])
            if "total" in timings:
                outside.append(latency_ms[index] - timings["total"])
        ages.append(answer_age_ms(full, run.measured_from))
    e2e = np.concatenate(e2e_all) if e2e_all else np.empty(0)
    # Capacity seen from outside: every ok answer (warm-up frames too) over the time they took.
    all_ok = [r.answered[[s == "ok" for s in r.status]] for r in run.streams]
    answer_times = np.concatenate(all_ok) if all_ok else np.empty(0)
    first_send = min(float(r.scheduled[0]) for r in run.streams) if run.streams else 0.0
    busy_s = float(answer_times.max()) - first_send if answer_times.size else 0.0
    total_ok = counts["answered"]
    duration = config.duration_s
    stage_ms = {stage: p50(stage_values.get(stage, [])) for stage in STAGES}
    stage_ms["total_server"] = p50(stage_values.get("total", []))
    stage_ms["outside_server"] = p50(outside)  # client + network + waiting to be sent, per frame
    # the part of outside_server that is the load generator's own lateness (ok frames, p50)
    stage_ms["send_lag"] = p50(list(np.concatenate(ok_lag))) if ok_lag else None
    scheduled = counts["scheduled"]
    report = {
        "e2e_ms": percentiles(e2e),
        # over scheduled frames: one never sent (skipped by a one-in-flight client, or after a broken
        # connection) is a frame the user did not get in time, as much as a dropped or late one
        "deadline_miss_rate": round(1.0 - within_budget / scheduled, 6) if counts["sent"] else None,
        "frames": counts,
        "answered_fps": {
            "total": round(total_ok / duration, 3),
            "per_stream": [round(n / duration, 3) for n in per_stream_ok],
        },
        "throughput_fps": round(answer_times.size / busy_s, 3) if busy_s > 0 else None,
        "stream_share": [round(n / total_ok, 6) if total_ok else None for n in per_stream_ok],
        "age_ms": percentiles(np.concatenate(ages) if ages else [], ("p50", "p99")),
        # what a headset feels when its connection ends: how often, and the longest wait for an answer
        "reconnects": [r.reconnects for r in run.streams],
        "longest_answer_gap_ms": longest_answer_gap_ms(run),
        "stage_ms": stage_ms,
        "send_lag_ms": percentiles(np.concatenate(send_lag) if send_lag else [], ("p50", "p99")),
        "e2e_from_sent_ms": percentiles(np.concatenate(from_sent) if from_sent else [], ("p50", "p99")),
    }
    return Summary(report, e2e)


def top1_by_frame(run: LoadRun, distinct_frames: int) -> list[str | None]:
    """For each distinct frame, the label most often answered for it (ok answers, warm-up included)."""
    seen: list[Counter] = [Counter() for _ in range(distinct_frames)]
    for record in run.streams:
        for frame_id, (status, label) in enumerate(zip(record.status, record.labels, strict=True)):
            if status == "ok" and label is not None:
                seen[(record.first_frame + frame_id) % distinct_frames][label] += 1
    return [counter.most_common(1)[0][0] if counter else None for counter in seen]


def top1_agreement(run: LoadRun, reference: list[str | None]) -> float | None:
    """Fraction of the run's ok answers whose label is the reference's for the same distinct frame
    (frames the reference never answered are left out)."""
    agree = total = 0
    for record in run.streams:
        for frame_id, (status, label) in enumerate(zip(record.status, record.labels, strict=True)):
            expected = reference[(record.first_frame + frame_id) % len(reference)]
            if status == "ok" and label is not None and expected is not None:
                total += 1
                agree += label == expected
    return round(agree / total, 6) if total else None
