"""`vr-sim`: render training datasets, a preview gallery, live headset streams, and measure render speed.

Argument parsing needs only the standard library, so `vr-sim --help` works without the `sim` extra; every
subcommand checks for the extra first and exits with code 2 and an install hint if it is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from vr_recognition.server.protocol import DEFAULT_PORT
from vr_recognition.sim import __version__
from vr_recognition.sim.errors import SimError

EXIT_USAGE = 2
SIM_DEPENDENCIES = {"panda3d": "panda3d", "numpy": "numpy", "cv2": "opencv-python-headless", "tqdm": "tqdm"}


def missing_dependencies() -> list[str]:
    return [
        package for module, package in SIM_DEPENDENCIES.items() if importlib.util.find_spec(module) is None
    ]


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipe", type=Path, help="TOML recipe (e.g. configs/demo-dataset.toml); flags override it"
    )
    parser.add_argument(
        "--classes", help="comma-separated class names (default: the recipe's or all 7 demo classes)"
    )
    parser.add_argument("--size", help="image size WxH, e.g. 1280x720")
    parser.add_argument("--seed", type=int, help="dataset seed; the same seed gives the same pixels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vr-sim", description=__doc__)
    parser.add_argument("--version", action="version", version=f"vr-sim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    render = commands.add_parser("render", help="render a labelled dataset in the capture-session format")
    render.add_argument(
        "--out", type=Path, required=True, help="dataset root; the session folder goes inside"
    )
    _add_dataset_options(render)
    render.add_argument("--per-class", type=int, help="frames per class")
    render.add_argument("--val-fraction", type=float, help="fraction of each class marked split=val")
    render.add_argument("--quality", type=int, help="JPEG quality 1-100")
    render.add_argument("--session-name", help="session folder name (default vr-sim-seed<SEED>)")
    render.add_argument(
        "--overwrite", action="store_true", help="replace an existing session of the same name"
    )
    render.add_argument("--no-progress", action="store_true", help="no progress bar")

    gallery = commands.add_parser("gallery", help="a labelled grid of sample frames as PNG")
    gallery.add_argument("--out", type=Path, required=True, help="PNG path")
    _add_dataset_options(gallery)
    gallery.add_argument("--per-class", type=int, default=3, help="tiles per class (one row per class)")
    gallery.add_argument("--tile-width", type=int, default=320, help="tile width in pixels")

    stream = commands.add_parser("stream", help="simulate headsets streaming frames to vr-serve")
    stream.add_argument("--url", default=f"ws://127.0.0.1:{DEFAULT_PORT}", help="vr-serve websocket URL")
    stream.add_argument("--fps", type=float, default=90.0, help="frames per second per stream")
    stream.add_argument("--duration", type=float, default=10.0, help="seconds to stream")
    stream.add_argument("--streams", type=int, default=1, help="concurrent headsets")
    stream.add_argument("--size", default="1280x720", help="frame size WxH")
    stream.add_argument("--quality", type=int, default=90, help="JPEG quality 1-100")
    stream.add_argument("--token", help="auth token sent to the server")
    stream.add_argument("--seed", type=int, default=0, help="scene and path seed (stream i uses seed+i)")
    stream.add_argument(
        "--prerender",
        type=float,
        default=0.0,
        help="render this many seconds of each path up front and loop them (when live rendering is too slow)",
    )
    stream.add_argument("--budget-ms", type=float, help="per-frame budget asked of the server")
    stream.add_argument("--json", type=Path, help="write the per-stream report here")

    speed = commands.add_parser("speed", help="measure frames/s of rendering, with and without JPEG encoding")
    speed.add_argument("--size", action="append", help="WxH, repeatable (default 224x224 and 1280x720)")
    speed.add_argument("--frames", type=int, default=60, help="frames per measurement")
    speed.add_argument("--quality", type=int, default=90, help="JPEG quality")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = missing_dependencies()
    if missing:
        print(
            f"vr-sim: missing {', '.join(missing)}. The simulator needs the `sim` extra:\n"
            "    pip install .[sim]        (from a checkout; or pip install 'vr-recognition[sim]')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return {"render": _render, "gallery": _gallery, "stream": _stream, "speed": _speed}[args.command](
            args
        )
    except SimError as error:
        print(f"vr-sim {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE


def _size(text: str) -> tuple[int, int]:
    from vr_recognition.server.imaging import parse_size

    try:
        return parse_size(text)
    except ValueError as error:  # the user's --size text
        raise SimError(str(error)) from None


def _recipe_from(args: argparse.Namespace, **extra):
    from vr_recognition.sim.recipe import load_recipe

    width = height = None
    if args.size:
        width, height = _size(args.size)
    classes = (
        tuple(name.strip() for name in args.classes.split(",") if name.strip()) if args.classes else None
    )
    return load_recipe(args.recipe, classes=classes, width=width, height=height, seed=args.seed, **extra)


def _render(args: argparse.Namespace) -> int:
    from vr_recognition.sim.dataset import render_dataset

    recipe = _recipe_from(
        args,
        per_class=args.per_class,
        val_fraction=args.val_fraction,
        quality=args.quality,
        session_name=args.session_name,
    )
    started = time.perf_counter()
    session = render_dataset(recipe, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    elapsed = time.perf_counter() - started
    total = len(recipe.classes) * recipe.per_class
    print(
        f"wrote {total} frames ({recipe.width}x{recipe.height}) to {session} in {elapsed:.1f}s "
        f"({total / elapsed:.1f} frames/s)"
    )
    return 0


def _gallery(args: argparse.Namespace) -> int:
    from vr_recognition.sim.gallery import render_gallery, save_png

    recipe = _recipe_from(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_png(render_gallery(recipe, per_class=args.per_class, tile_width=args.tile_width), str(args.out))
    print(f"wrote {args.out}")
    return 0


def _stream(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import json

    from vr_recognition.sim.stream import SimRunSettings, stream_to_server

    width, height = _size(args.size)
    settings = SimRunSettings(
        url=args.url,
        fps=args.fps,
        duration_s=args.duration,
        streams=args.streams,
        width=width,
        height=height,
        quality=args.quality,
        token=args.token,
        seed=args.seed,
        prerender_s=args.prerender,
        budget_ms=args.budget_ms,
    )
    reports = asyncio.run(stream_to_server(settings))
    summaries = [report.summary() for report in reports]
    for index, summary in enumerate(summaries):
        accuracy = summary["accuracy"]
        print(
            f"stream {index}: sent {summary['sent']} (ticks with no new frame: {summary['skipped_ticks']}), "
            f"ok {summary['ok']}, dropped_stale {summary['dropped_stale']}, late {summary['late']}, "
            f"errors {summary['errors']}; accuracy {'-' if accuracy is None else f'{accuracy:.1%}'}; "
            f"latency p50 {summary['latency_ms']['p50']:.1f} ms, p99 {summary['latency_ms']['p99']:.1f} ms"
        )
    if args.json:
        report = {"settings": dataclasses.asdict(settings), "streams": summaries}
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def _speed(args: argparse.Namespace) -> int:
    from vr_recognition.server.imaging import encode_jpeg
    from vr_recognition.sim.catalog import DEFAULT_CLASSES
    from vr_recognition.sim.engine import OffscreenRenderer
    from vr_recognition.sim.randomization import SceneRanges, sample_frame
    from vr_recognition.sim.scene import FrameRenderer

    for size in args.size or ["224x224", "1280x720"]:
        width, height = _size(size)
        with OffscreenRenderer(width, height) as renderer:
            frames = FrameRenderer(renderer)
            params = [
                sample_frame(
                    0,
                    DEFAULT_CLASSES[i % len(DEFAULT_CLASSES)],
                    i,
                    DEFAULT_CLASSES,
                    SceneRanges(),
                    width / height,
                )
                for i in range(args.frames)
            ]
            for warmup in params[: len(DEFAULT_CLASSES)]:  # model loading is not rendering
                frames.render(warmup)
            started = time.perf_counter()
            rendered = [frames.render(p).rgb for p in params]
            render_s = time.perf_counter() - started
            started = time.perf_counter()
            for rgb in rendered:
                encode_jpeg(rgb, args.quality)
            encode_s = time.perf_counter() - started
        print(
            f"{width}x{height}: render {args.frames / render_s:.1f} frames/s, "
            f"render+JPEG(q{args.quality}) {args.frames / (render_s + encode_s):.1f} frames/s "
            f"({1000 * render_s / args.frames:.1f} + {1000 * encode_s / args.frames:.1f} ms/frame)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
