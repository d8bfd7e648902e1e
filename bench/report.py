"""One run's numbers as stable JSON (keys documented in docs/benchmarks.md) and as console text."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

SCHEMA = "vr-bench/1"


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)


def machine_info(provider: str) -> dict:
    """What the numbers were measured on: they mean little without it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = None
    if shutil.which("nvidia-smi"):
        try:
            done = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            gpu = ", ".join(line.strip() for line in done.stdout.splitlines() if line.strip()) or None
        except (OSError, subprocess.TimeoutExpired):
            gpu = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        from importlib import metadata

        onnxruntime_version = metadata.version("onnxruntime")
    except Exception:
        onnxruntime_version = None
    return {
        "cpu": cpu,
        "cores": cores,
        "gpu": gpu,
        "provider": provider,
        "python": platform.python_version(),
        "onnxruntime": onnxruntime_version,
        "platform": platform.platform(),
    }


def naive_section(naive_report: dict | None, ours: dict, skipped: str | None) -> dict:
    """The naive baseline's headline numbers and ours relative to them (below 1: we are faster)."""
    if naive_report is None:
        return {"skipped": skipped, "e2e_ms": None, "answered_fps": None}
    return {
        "skipped": None,
        "e2e_ms": naive_report["e2e_ms"],
        "answered_fps": naive_report["answered_fps"],
        "throughput_fps": naive_report["throughput_fps"],
        "deadline_miss_rate": naive_report["deadline_miss_rate"],
        "frames": naive_report["frames"],
        "stage_ms": naive_report["stage_ms"],
        "ours_over_naive_p50": _ratio(ours["e2e_ms"]["p50"], naive_report["e2e_ms"]["p50"]),
        "ours_over_naive_p99": _ratio(ours["e2e_ms"]["p99"], naive_report["e2e_ms"]["p99"]),
    }


def run_report(
    config: dict,
    machine: dict,
    ours: dict,
    floor: dict | None,
    naive: dict,
    baselines_skipped: str | None,
    notes: list[str],
) -> dict:
    """All keys always present (null when not measured), so scripts can rely on the shape."""
    floor = floor or {}
    floor_ms = floor.get("floor_ms") or {"p50": None, "p99": None, "max": None}
    paced_ms = floor.get("floor_paced_ms") or {"p50": None, "p99": None, "max": None}
    max_rate = floor.get("floor_max_rate_fps")
    return {
        "schema": SCHEMA,
        "config": config,
        "machine": machine,
        **ours,
        "bare_model_ms": floor.get("bare_model_ms") or {"p50": None, "p99": None, "max": None},
        "floor_ms": floor_ms,
        "floor_mean_ms": floor.get("floor_mean_ms"),
        "floor_max_rate_fps": max_rate,
        "floor_iterations": floor.get("floor_iterations"),
        "served_vs_floor_rate": _ratio(ours["answered_fps"]["total"], max_rate),
        "overhead_ratio_p50": _ratio(ours["e2e_ms"]["p50"], floor_ms["p50"]),
        "overhead_ratio_p99": _ratio(ours["e2e_ms"]["p99"], floor_ms["p99"]),
        "floor_paced_ms": paced_ms,
        "floor_paced_fps": floor.get("floor_paced_fps"),
        "overhead_ratio_paced_p50": _ratio(ours["e2e_ms"]["p50"], paced_ms["p50"]),
        "overhead_ratio_paced_p99": _ratio(ours["e2e_ms"]["p99"], paced_ms["p99"]),
        "naive": naive,
        "baselines_skipped": baselines_skipped,
        "notes": notes,
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f} %"


def describe(report: dict) -> str:
    """Human summary of one configuration."""
    c, e2e, frames, stage = report["config"], report["e2e_ms"], report["frames"], report["stage_ms"]
    fps, age, lag = report["answered_fps"], report["age_ms"], report["send_lag_ms"]
    lines = [
        f"== {c['streams']} stream(s) x {c['fps']:g} fps, {c['duration_s']:g} s, {c['size']} "
        f"q{c['quality']}, budget {c['budget_ms']:.2f} ms, server {c['server']} "
        f"({report['machine']['provider']})",
        f"  e2e ms      p50 {_fmt(e2e['p50'])}  p90 {_fmt(e2e['p90'])}  p95 {_fmt(e2e['p95'])}  "
        f"p99 {_fmt(e2e['p99'])}  max {_fmt(e2e['max'])}",
        f"  frames      sent {frames['sent']}  ok {frames['answered']}  "
        f"dropped_stale {frames['dropped_stale']}  late {frames['late']}  errors {frames['errors']}  "
        f"unanswered {frames['unanswered']}",
        f"  deadline miss rate {_percent(report['deadline_miss_rate'])}   answered {_fmt(fps['total'], 1)} "
        "fps total, per stream " + " ".join(_fmt(v, 1) for v in fps["per_stream"]),
        f"  age ms      p50 {_fmt(age['p50'])}  p99 {_fmt(age['p99'])}   send lag ms p50 "
        f"{_fmt(lag['p50'], 3)}  p99 {_fmt(lag['p99'])}   throughput {_fmt(report['throughput_fps'], 1)} fps",
        f"  server ms   decode {_fmt(stage['decode'])}  queue {_fmt(stage['queue'])}  "
        f"infer {_fmt(stage['infer'])}  total {_fmt(stage['total_server'])}  "
        f"(+ outside server {_fmt(stage['outside_server'])}, of which the generator's send lag "
        f"{_fmt(stage.get('send_lag'), 3)}; p50s)",
    ]
    floor, bare = report["floor_ms"], report["bare_model_ms"]
    if floor["p50"] is not None:
        lines += [
            f"  floor ms    p50 {_fmt(floor['p50'])}  p99 {_fmt(floor['p99'])}   bare model p50 "
            f"{_fmt(bare['p50'])}  p99 {_fmt(bare['p99'])}   floor max rate "
            f"{_fmt(report['floor_max_rate_fps'], 1)} fps",
            f"  ours/floor  p50 x{_fmt(report['overhead_ratio_p50'])}  "
            f"p99 x{_fmt(report['overhead_ratio_p99'])}   "
            f"served/floor rate {_fmt(report['served_vs_floor_rate'])}",
        ]
    paced = report["floor_paced_ms"]
    if paced["p50"] is not None:
        lines += [
            f"  paced floor p50 {_fmt(paced['p50'])}  p99 {_fmt(paced['p99'])}   (the same inline work, one "
            f"frame every 1/{report['floor_paced_fps']:g} s)   ours/paced floor p50 "
            f"x{_fmt(report['overhead_ratio_paced_p50'])}  p99 x{_fmt(report['overhead_ratio_paced_p99'])}",
        ]
    naive = report["naive"]
    if naive.get("skipped"):
        lines.append(f"  naive       {naive['skipped']}")
    elif naive.get("e2e_ms"):
        n, counts = naive["e2e_ms"], naive["frames"]
        lines += [
            f"  naive ms    p50 {_fmt(n['p50'])}  p99 {_fmt(n['p99'])}  (over the {counts['answered']} of "
            f"{counts['sent']} frames answered; {counts['unanswered']} never answered)  "
            f"throughput {_fmt(naive['throughput_fps'], 1)} fps  "
            f"miss rate {_percent(naive['deadline_miss_rate'])}",
            f"  ours/naive  p50 x{_fmt(naive['ours_over_naive_p50'], 3)}  "
            f"p99 x{_fmt(naive['ours_over_naive_p99'], 3)}",
        ]
    if report["baselines_skipped"]:
        lines.append(f"  baselines   {report['baselines_skipped']}")
    if any(report.get("reconnects") or []):
        lines.append(
            f"  reconnects  {report['reconnects']} (per stream)   longest wait between answers "
            f"{_fmt(report['longest_answer_gap_ms'])} ms"
        )
    lines += [f"  note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def sweep_table(param: str, reports: list[dict]) -> str:
    """One line per configuration, like perf_analyzer's concurrency sweep."""
    header = (
        f"{param:>8} {'sent':>6} {'ok':>6} {'stale':>6} {'late':>5} {'ok fps':>8} {'p50':>8} {'p99':>8} "
        f"{'max':>8} {'miss %':>7} {'age p99':>8} {'naive p99':>10}"
    )
    rows = [header, "-" * len(header)]
    for report in reports:
        frames, e2e = report["frames"], report["e2e_ms"]
        naive_p99 = (report["naive"].get("e2e_ms") or {}).get("p99")
        miss = report["deadline_miss_rate"]
        rows.append(
            f"{report['config'][param]:>8g} {frames['sent']:>6} {frames['answered']:>6} "
            f"{frames['dropped_stale']:>6} {frames['late']:>5} {report['answered_fps']['total']:>8.1f} "
            f"{_fmt(e2e['p50']):>8} {_fmt(e2e['p99']):>8} {_fmt(e2e['max']):>8} "
            f"{_fmt(None if miss is None else 100 * miss, 1):>7} {_fmt(report['age_ms']['p99']):>8} "
            f"{_fmt(naive_p99):>10}"
        )
    return "\n".join(rows)


def print_err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
