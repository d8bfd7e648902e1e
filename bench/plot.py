"""Pictures of a run: latency CDFs, where the time goes, and p99 across a sweep.

matplotlib is imported here only (Agg backend, no display), so the benchmark runs without it when
no --plot is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

STAGE_COLOURS = {
    "decode": "#4c72b0",
    "queue": "#dd8452",
    "infer": "#55a868",
    "post": "#8172b3",
    "outside_server": "#937860",
}


@dataclass
class PlotSeries:
    label: str  # e.g. "4 streams"
    ours_ms: np.ndarray
    report: dict
    naive_ms: np.ndarray | None = None
    floor_ms: np.ndarray | None = None


def _cdf(axis, values: np.ndarray, label: str, **style) -> None:
    values = np.sort(values[np.isfinite(values)])
    if values.size:
        axis.plot(values, np.arange(1, values.size + 1) / values.size, label=label, **style)


def save_plot(series: list[PlotSeries], path: Path, sweep_param: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if sweep_param else 2
    figure, axes = plt.subplots(1, panels, figsize=(6.0 * panels, 4.8))
    cdf_axis, stage_axis = axes[0], axes[1]

    budget = series[0].report["config"]["budget_ms"]
    for index, item in enumerate(series):
        colour = f"C{index}"
        _cdf(cdf_axis, item.ours_ms, f"vr-serve, {item.label}", color=colour)
        if item.naive_ms is not None:
            _cdf(cdf_axis, item.naive_ms, f"naive, {item.label}", color=colour, linestyle="--")
    if series[0].floor_ms is not None:
        _cdf(cdf_axis, series[0].floor_ms, "floor (inline, no server)", color="black", linestyle=":")
    cdf_axis.axvline(budget, color="grey", linewidth=0.8)
    cdf_axis.text(budget, 0.02, f" budget {budget:.1f} ms", color="grey", fontsize=8)
    cdf_axis.set_xscale("log")
    cdf_axis.set_xlabel("end-to-end latency from scheduled send (ms, log)")
    cdf_axis.set_ylabel("fraction of answered frames")
    cdf_axis.set_title("Latency CDF (answered ok)")
    cdf_axis.grid(True, which="both", alpha=0.3)
    cdf_axis.legend(fontsize=7)

    labels = [item.label for item in series]
    bottoms = np.zeros(len(series))
    for stage, colour in STAGE_COLOURS.items():
        heights = np.array([item.report["stage_ms"].get(stage) or 0.0 for item in series])
        stage_axis.bar(labels, heights, bottom=bottoms, color=colour, label=stage.replace("_", " "))
        bottoms += heights
    floor_p50 = series[0].report["floor_ms"]["p50"]
    if floor_p50 is not None:
        stage_axis.axhline(floor_p50, color="black", linestyle=":", label="floor p50")
    stage_axis.set_ylabel("ms (p50 of each stage)")
    stage_axis.set_title("Where the time goes (vr-serve)")
    stage_axis.legend(fontsize=7)

    if sweep_param:
        sweep_axis = axes[2]
        xs = [item.report["config"][sweep_param] for item in series]
        sweep_axis.plot(
            xs, [item.report["e2e_ms"]["p99"] or np.nan for item in series], "o-", label="vr-serve p99"
        )
        naive_p99 = [(item.report["naive"].get("e2e_ms") or {}).get("p99") for item in series]
        if any(v is not None for v in naive_p99):
            sweep_axis.plot(xs, [np.nan if v is None else v for v in naive_p99], "s--", label="naive p99")
        sweep_axis.axhline(budget, color="grey", linewidth=0.8, label="budget")
        sweep_axis.set_xlabel(sweep_param)
        sweep_axis.set_ylabel("p99 latency (ms)")
        sweep_axis.set_yscale("log")
        sweep_axis.set_title(f"p99 against {sweep_param}")
        sweep_axis.grid(True, which="both", alpha=0.3)
        sweep_axis.legend(fontsize=7)

    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
