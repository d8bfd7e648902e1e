"""vr-bench command line: run the open-loop load, the baselines, and write JSON, text and a plot.

    vr-bench --spawn --streams 4 --fps 90 --duration 10 --frames data/demo --baselines \\
        --json bench.json --plot bench.png -- --model exported_models/default.onnx

Everything after `--` goes to vr-serve when --spawn starts it. docs/benchmarks.md explains the
method and every JSON key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vr_recognition.bench.errors import BenchError
from vr_recognition.bench.frames import EncodedFrame, frames_from_folder, frames_from_sim
from vr_recognition.bench.openloop import LoadConfig, run_load
from vr_recognition.bench.peers.specs import DEFAULT_BATCH_WAIT_MS, MODES, PEERS, parse_modes, parse_peers
from vr_recognition.bench.peers.table import peer_table
from vr_recognition.bench.peers.venvs import DEFAULT_DIR, ENV_DIR
from vr_recognition.bench.report import (
    describe,
    machine_info,
    naive_section,
    print_err,
    run_report,
    sweep_table,
)
from vr_recognition.bench.spawn import SpawnedServer
from vr_recognition.bench.stats import Summary, summarize
from vr_recognition.server.imaging import parse_size

SWEEPABLE = {"streams": int, "fps": float}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vr-bench",
        description="Open-loop latency benchmark: N streams send frames at a headset's display rate, "
        "latency is measured from each frame's scheduled send time (docs/benchmarks.md). "
        "Arguments after `--` are passed to vr-serve with --spawn.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="ws://host:port of a running vr-serve")
    target.add_argument("--spawn", action="store_true", help="start vr-serve for the run and stop it after")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--frames", type=Path, help="folder of images (jpg/png, searched recursively)")
    source.add_argument("--sim", action="store_true", help="render frames of a head path with vr-sim")
    parser.add_argument("--sim-seconds", type=float, default=2.0, help="seconds of head path --sim renders")
    parser.add_argument("--max-frames", type=int, default=256, help="at most this many distinct frames")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument(
        "--fps", type=float, default=90.0, help="frames per second per stream (72, 90, 120, ...)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per configuration")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds sent first and left out of the statistics"
    )
    parser.add_argument(
        "--drain", type=float, default=2.0, help="seconds to wait for answers after the last send"
    )
    parser.add_argument("--size", default="1280x720", help="frame size WxH (default: %(default)s)")
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality (default: %(default)s)")
    parser.add_argument("--budget-ms", type=float, help="per-frame budget (default: 1000/fps)")
    parser.add_argument("--token", help="bearer token for the server (also passed to a spawned vr-serve)")
    parser.add_argument("--json", type=Path, help="write results to this JSON file")
    parser.add_argument("--plot", type=Path, help="write latency CDFs and stage bars to this PNG")
    parser.add_argument("--sweep", help="run several configurations, e.g. streams=1,2,4,8 or fps=72,90,120")
    parser.add_argument(
        "--baselines", action="store_true", help="also measure the floor, the bare model and the naive server"
    )
    parser.add_argument(
        "--model", type=Path, help="the served .onnx, for the floor (default with --spawn: vr-serve's model)"
    )
    parser.add_argument(
        "--naive-python",
        default=sys.executable,
        help="interpreter with torch for the naive baseline (default: this one)",
    )
    parser.add_argument(
        "--naive-drain",
        type=float,
        default=10.0,
        help="seconds the naive server gets to work off its FIFO after the last send (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds stream phases and frame order")
    parser.add_argument(
        "--pacing",
        choices=("precise", "sleep"),
        default="precise",
        help="precise: sleep, then spin the last fraction of a ms (default); sleep: plain asyncio sleeps",
    )
    peers = parser.add_argument_group("peers (docs/benchmarks.md, 'Peers')")
    peers.add_argument(
        "--peers",
        help=f"also serve the same model with these servers and load them the same way: {','.join(PEERS)}",
    )
    peers.add_argument(
        "--peer-modes",
        default=",".join(MODES),
        help="client modes for the peers (default: %(default)s)",
    )
    peers.add_argument(
        "--peers-dir",
        type=Path,
        help=f"where the peers' venvs are cached (default: ${ENV_DIR} or {DEFAULT_DIR})",
    )
    peers.add_argument(
        "--peer-batch-wait-ms",
        type=float,
        default=DEFAULT_BATCH_WAIT_MS,
        help="the peers' batching window: Triton's max queue delay, LitServe's batch_timeout "
        "(default: %(default)s)",
    )
    return parser


def split_server_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def parse_sweep(text: str | None, args: argparse.Namespace) -> tuple[str | None, list[float]]:
    if not text:
        return None, [args.streams]
    param, _, values = text.partition("=")
    if param not in SWEEPABLE or not values:
        raise ValueError(f"--sweep takes {' or '.join(SWEEPABLE)}=V1,V2,..., not {text!r}")
    return param, [SWEEPABLE[param](v) for v in values.split(",") if v.strip()]


@dataclass
class ServedModel:
    """What the floor needs: the file vr-serve serves and its session settings."""

    path: Path | None
    providers: str = "auto"
    threads: int | None = None
    why_missing: str | None = None
    max_batch: int = 8


def served_model(args: argparse.Namespace, server_args: list[str]) -> ServedModel:
    from vr_recognition.server.cli import SetupError, find_default_model
    from vr_recognition.server.cli import build_parser as server_parser

    served, _ = server_parser().parse_known_args(server_args)
    if args.model is not None:
        return ServedModel(args.model, served.providers, served.threads, max_batch=served.max_batch)
    if not args.spawn:
        return ServedModel(None, why_missing="floor skipped: pass --model PATH (the file the server serves)")
    try:
        path = served.model if served.model is not None else find_default_model(served.models_dir)
    except SetupError as exc:
        return ServedModel(None, why_missing=f"floor skipped: {exc}")
    return ServedModel(path, served.providers, served.threads, max_batch=served.max_batch)


def load_frames(
    args: argparse.Namespace, fps: float, size: tuple[int, int]
) -> tuple[list[EncodedFrame], str]:
    if args.sim:
        return frames_from_sim(size, args.quality, fps, args.sim_seconds), f"vr-sim ({args.sim_seconds:g} s)"
    return frames_from_folder(args.frames, size, args.quality, args.max_frames), str(args.frames)


def load_configs(
    args: argparse.Namespace, url: str, param: str | None, values: list[float]
) -> list[LoadConfig]:
    configs = []
    for value in values:
        streams = int(value) if param == "streams" else args.streams
        fps = float(value) if param == "fps" else args.fps
        configs.append(
            LoadConfig(
                url=url,
                streams=streams,
                fps=fps,
                duration_s=args.duration,
                budget_ms=args.budget_ms or 1000.0 / fps,
                warmup_s=args.warmup,
                drain_s=args.drain,
                token=args.token,
                seed=args.seed,
            )
        )
    return configs


def run_all(
    configs: list[LoadConfig],
    url: str,
    frames: list[EncodedFrame],
    drain_s: float | None = None,
    precise: bool = True,
) -> list[tuple[Summary, object]]:
    """Each configuration in turn against the same server at `url`."""
    return [run_one(config, url, frames, drain_s, precise) for config in configs]


def run_one(
    config: LoadConfig,
    url: str,
    frames: list[EncodedFrame],
    drain_s: float | None = None,
    precise: bool = True,
) -> tuple[Summary, object]:
    config = dataclasses.replace(config, url=url, drain_s=config.drain_s if drain_s is None else drain_s)
    run = asyncio.run(run_load(config, frames, precise))
    return summarize(run), run


def series_label(report: dict, param: str) -> str:
    """'1 stream', '4 streams', '90 fps' for plot legends."""
    value = report["config"][param]
    name = param[:-1] if param == "streams" and value == 1 else param
    return f"{value:g} {name}"


def main(argv: list[str] | None = None) -> int:
    own_args, server_args = split_server_args(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(own_args)
    if server_args and not args.spawn:
        parser.error("arguments after -- are for vr-serve and need --spawn")
    try:
        param, values = parse_sweep(args.sweep, args)
        size = parse_size(args.size)
        args.peers = parse_peers(args.peers)
        args.peer_modes = parse_modes(args.peer_modes)
    except ValueError as exc:  # the user's --sweep, --size or --peers text
        parser.error(str(exc))
    if args.token and args.spawn and "--token" not in server_args:
        server_args += ["--token", args.token]

    try:
        return run(args, server_args, param, values, size)
    except BenchError as exc:
        print_err(f"vr-bench: {exc}")
        return 2


@dataclass
class Baselines:
    """The floor and the naive server, measured in the same run (or why not)."""

    floor_reports: dict[float, dict] | None = None  # by a configuration's frame rate (the paced floor's)
    floor_samples: object = None
    naive_runs: list | None = None
    skipped: str | None = None
    naive_skipped: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def run(
    args: argparse.Namespace,
    server_args: list[str],
    param: str | None,
    values: list[float],
    size: tuple[int, int],
) -> int:
    frames, frames_source = load_frames(args, args.fps, size)
    print_err(f"vr-bench: {len(frames)} frames from {frames_source}, {args.size} q{args.quality}")
    model = served_model(args, server_args)
    configs = load_configs(args, args.url or "", param, values)
    precise = args.pacing == "precise"

    with contextlib.ExitStack() as stack:
        peers = stack.enter_context(start_peer_set(args, model)) if args.peers else None
        url = args.url
        if args.spawn:
            server = stack.enter_context(SpawnedServer.vr_serve(server_args))
            url = server.url
            print_err(f"vr-bench: spawned vr-serve at {url}")
        if peers is None:
            ours = run_all(configs, url, frames, precise=precise)
            peer_sections = [peers_section_skipped(args) for _ in configs]
        else:
            ours, peer_sections = run_with_peers(
                args, server_args, configs, url, frames, model, peers, precise
            )

    baselines = measure_baselines(args, model, configs, frames, ours)
    plot_path = args.plot
    if plot_path and importlib.util.find_spec("matplotlib") is None:
        baselines.notes.append("no plot: matplotlib is not installed (pip install matplotlib)")
        print_err(f"vr-bench: {baselines.notes[-1]}")
        plot_path = None

    reports = []
    for index, (summary, one_run) in enumerate(ours):
        naive = baselines.naive_runs[index] if baselines.naive_runs else None
        reports.append(
            run_report(
                config_json(args, server_args, one_run, frames, frames_source, model),
                machine_info(one_run.provider),
                summary.report,
                (baselines.floor_reports or {}).get(one_run.config.fps),
                naive_section(naive[0].report if naive else None, summary.report, baselines.naive_skipped),
                baselines.skipped,
                baselines.notes + one_run.notes + (naive[1].notes if naive else []),
            )
        )
        reports[-1]["config"]["pacing"] = one_run.pacing
        reports[-1]["peers"] = peer_sections[index]
        print(describe(reports[-1]), flush=True)
        if peer_sections[index]["rows"]:
            print(peer_table(reports[-1]), flush=True)
    if param:
        print(sweep_table(param, reports), flush=True)
    if args.json:
        write_json(args.json, reports, param, values)
    if plot_path:
        write_plot(plot_path, ours, reports, baselines, param)
    return 0


@contextlib.contextmanager
def start_peer_set(args: argparse.Namespace, model: ServedModel):
    """The peers' venvs (made or cached) for the run; their servers are started by run_with_peers."""
    from vr_recognition.bench.peers.run import prepare_peers

    peers = prepare_peers(args.peers, args.peers_dir, print_err)
    try:
        yield peers
    finally:
        peers.stop()


def peers_section_skipped(args: argparse.Namespace, why: str = "not asked for (--peers)") -> dict:
    return {"asked": args.peers, "modes": args.peer_modes, "skipped": why, "order": [], "rows": [],
            "venv_seconds": {}}  # fmt: skip


def run_with_peers(args, server_args, configs, url, frames, model: ServedModel, peers, precise: bool):
    """Per configuration, vr-serve and every peer in every mode, one after another on the same frames;
    the order rotates from one configuration to the next, so slow drift of the machine falls on all."""
    from vr_recognition.bench.peers.run import (
        PeerSettings,
        peer_settings_text,
        row,
        skipped_row,
        write_frames_file,
    )
    from vr_recognition.bench.stats import top1_by_frame

    if model.path is None:
        why = f"peers skipped: they need the served model file ({model.why_missing})"
        print_err(f"vr-bench: {why}")
        return run_all(configs, url, frames, precise=precise), [
            peers_section_skipped(args, why) for _ in configs
        ]
    settings = PeerSettings(
        model.path, model.providers, model.threads, model.max_batch, args.peer_batch_wait_ms
    )
    ours, sections = [], []
    with tempfile.TemporaryDirectory(prefix="vr-bench-frames-") as folder:
        frames_file = write_frames_file(frames, Path(folder))
        for index, config in enumerate(configs):
            # Each peer runs only while it is measured: an idle peer is not idle (LitServe's workers poll
            # their queues: 20 % of a core measured on 2 cores), and the server measured beside it would
            # pay for that. The servers' order rotates, and the modes' order alternates, per configuration.
            servers = ["vr-serve", *peers.peers]
            servers = servers[index % len(servers) :] + servers[: index % len(servers)]
            modes = list(args.peer_modes) if index % 2 == 0 else list(reversed(args.peer_modes))
            order: list[tuple] = []
            results: dict = {}
            failures: dict = {}
            ready_lines: dict[str, str] = {}  # each peer's settings as it printed them when ready
            for target in servers:
                if target == "vr-serve":
                    order.append(("vr-serve", None))
                    results["vr-serve"] = run_one(config, url, frames, precise=precise)
                    continue
                ran = run_peer_alone(target, modes, settings, config, frames_file, precise)
                order += [(target, mode) for mode in modes if (target.spec.name, mode) in ran.results]
                results.update(ran.results)
                failures.update(ran.failures)
                ready_lines[target.spec.name] = ran.ready_line
            ours.append(results["vr-serve"])
            summary, our_run = results["vr-serve"]
            reference = top1_by_frame(our_run, len(frames))
            ours_settings = " ".join(server_args) or "vr-serve defaults"
            rows = [row("vr-serve", "open-loop", "websocket (protocol v1)", ours_settings, summary, our_run,
                        len(frames), None)]  # fmt: skip
            for peer in peers.peers:
                for mode in args.peer_modes:
                    name = peer.spec.name
                    got = results.get((name, mode), failures.get(name, "not run"))
                    if isinstance(got, str):
                        rows.append(skipped_row(name, mode, peer.spec.protocol, got))
                    else:
                        settings_text = peer_settings_text(peer.spec, ready_lines.get(name, ""))
                        summary_, run_ = got
                        rows.append(
                            row(
                                name,
                                mode,
                                peer.spec.protocol,
                                settings_text,
                                summary_,
                                run_,
                                len(frames),
                                reference,
                            )
                        )
            for name, why in peers.skipped.items():
                rows += [skipped_row(name, mode, PEERS[name].protocol, why) for mode in args.peer_modes]
            sections.append(
                {
                    "asked": args.peers,
                    "modes": args.peer_modes,
                    "skipped": None,
                    "order": [t if t == "vr-serve" else f"{t.spec.name} {m}" for t, m in order],
                    "rows": rows,
                    "venv_seconds": peers.venv_seconds,
                }
            )
    return ours, sections


@dataclass
class PeerRuns:
    results: dict = dataclasses.field(default_factory=dict)  # (name, mode) -> (Summary, run) or why not
    failures: dict = dataclasses.field(default_factory=dict)  # name -> why it did not start
    ready_line: str = ""


def run_peer_alone(peer, modes: list[str], settings, config, frames_file: Path, precise: bool) -> PeerRuns:
    """Start one peer, load it in each mode, stop it."""
    from vr_recognition.bench.peers.run import run_peer

    name, out = peer.spec.name, PeerRuns()
    try:
        peer.start(settings, config.budget_ms)
    except BenchError as exc:
        out.failures[name] = f"server failed to start: {str(exc)[-1500:]}"
        print_err(f"vr-bench: {name} {out.failures[name]}")
        return out
    out.ready_line = peer.server.ready_line if peer.server else ""
    try:
        for mode in modes:
            print_err(f"vr-bench: {name} ({mode}), {config.streams} stream(s) x {config.fps:g} fps")
            try:
                run = run_peer(peer, mode, config, frames_file, precise)
            except BenchError as exc:
                out.results[(name, mode)] = str(exc)
                print_err(f"vr-bench: {name} ({mode}) failed: {str(exc)[-800:]}")
                continue
            out.results[(name, mode)] = (summarize(run), run)
    finally:
        peer.stop()
    return out


def measure_baselines(
    args: argparse.Namespace,
    model: ServedModel,
    configs: list[LoadConfig],
    frames: list[EncodedFrame],
    ours: list[tuple[Summary, object]],
) -> Baselines:
    if not args.baselines:
        return Baselines(skipped="not asked for (--baselines)", naive_skipped="not asked for (--baselines)")
    from vr_recognition.bench.baselines import measure_floor, spawn_naive_server, torch_missing_reason

    result = Baselines()
    contract = None
    if model.path is None:
        result.skipped = model.why_missing
    else:
        rates = sorted({config.fps for config in configs})
        floor = measure_floor(model.path, frames, model.providers, model.threads, paced_fps=rates)
        result.floor_reports = {fps: floor.report(fps) for fps in rates}
        result.floor_samples, contract = floor.floor_ms, floor.contract
        served_name = ours[0][1].model_name
        if served_name and served_name != contract.name:
            result.notes.append(
                f"the floor's model {contract.name!r} is not the served model {served_name!r}"
            )
    result.naive_skipped = torch_missing_reason(args.naive_python) if contract is not None else result.skipped
    if result.naive_skipped is None:
        try:
            with spawn_naive_server(args.naive_python, contract, model.threads) as naive_server:
                result.naive_runs = run_all(configs, naive_server.url, frames, args.naive_drain)
        except BenchError as exc:
            result.naive_skipped = f"naive baseline failed: {type(exc).__name__}: {str(exc)[-500:]}"
    if result.naive_skipped:
        print_err(f"vr-bench: {result.naive_skipped}")
    return result


def config_json(
    args: argparse.Namespace,
    server_args: list[str],
    one_run,
    frames: list[EncodedFrame],
    frames_source: str,
    model: ServedModel,
) -> dict:
    config = one_run.config
    return {
        "url": None if args.spawn else config.url,
        "spawned": bool(args.spawn),
        "server_args": server_args,
        "server": one_run.server_name,
        "streams": config.streams,
        "fps": config.fps,
        "duration_s": config.duration_s,
        "warmup_s": config.warmup_s,
        "drain_s": config.drain_s,
        "size": args.size,
        "quality": args.quality,
        "budget_ms": round(config.budget_ms, 4),
        "frames_source": frames_source,
        "distinct_frames": len(frames),
        "mean_frame_bytes": round(sum(len(f.jpeg) for f in frames) / len(frames)),
        "model_path": None if model.path is None else str(model.path),
        "model_name": one_run.model_name,
        "seed": config.seed,
    }


def write_json(path: Path, reports: list[dict], param: str | None, values: list[float]) -> None:
    if param:
        document = {
            "schema": reports[0]["schema"],
            "sweep": {"param": param, "values": values},
            "machine": reports[0]["machine"],
            "runs": reports,
        }
    else:
        document = {**reports[0], "sweep": None}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print_err(f"vr-bench: wrote {path}")


def write_plot(
    path: Path,
    ours: list[tuple[Summary, object]],
    reports: list[dict],
    baselines: Baselines,
    param: str | None,
) -> None:
    from vr_recognition.bench.plot import PlotSeries, save_plot

    series = [
        PlotSeries(
            label=series_label(report, param or "streams"),
            ours_ms=summary.e2e_ms,
            report=report,
            naive_ms=baselines.naive_runs[index][0].e2e_ms if baselines.naive_runs else None,
            floor_ms=baselines.floor_samples,
        )
        for index, ((summary, _), report) in enumerate(zip(ours, reports, strict=True))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_plot(series, path, param)
    print_err(f"vr-bench: wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
