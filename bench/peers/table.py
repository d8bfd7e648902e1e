"""The one comparison table: vr-serve and every peer in every client mode, one configuration."""

from __future__ import annotations


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def peer_table(report: dict) -> str:
    """Rows of report["peers"]["rows"] as fixed-width text (the first row is vr-serve's)."""
    config = report["config"]
    header = (
        f"{'server':<10} {'mode':<14} {'ok fps':>7} {'e2e p50':>8} {'e2e p99':>8} {'miss %':>7} "
        f"{'age p50':>8} {'age p99':>8} {'dropped':>8} {'late':>5} {'err':>5} {'unans':>5} {'lag p50':>8} "
        f"{'agree':>6}"
    )
    lines = [
        f"== servers compared: {config['streams']} stream(s) x {config['fps']:g} fps, {config['size']} "
        f"q{config['quality']}, budget {config['budget_ms']:.1f} ms (ms; dropped = stale + client-skipped)",
        header,
        "-" * len(header),
    ]
    for row in report["peers"]["rows"]:
        if row.get("skipped"):
            lines.append(f"{row['server']:<10} {row['mode']:<14} skipped: {row['skipped'][:120]}")
            continue
        frames, e2e, age = row["frames"], row["e2e_ms"], row["age_ms"]
        miss = row["deadline_miss_rate"]
        dropped = frames["dropped_stale"] + frames.get("client_skipped", 0)
        agree = row.get("top1_agreement")
        lines.append(
            f"{row['server']:<10} {row['mode']:<14} {row['answered_fps']['total']:>7.1f} "
            f"{_fmt(e2e['p50']):>8} {_fmt(e2e['p99']):>8} {_fmt(None if miss is None else 100 * miss):>7} "
            f"{_fmt(age['p50']):>8} {_fmt(age['p99']):>8} {dropped:>8} {frames['late']:>5} "
            f"{frames['errors']:>5} {frames['unanswered']:>5} {_fmt(row['send_lag_ms']['p50'], 2):>8} "
            f"{_fmt(None if agree is None else 100 * agree, 0):>6}"
        )
    return "\n".join(lines)
