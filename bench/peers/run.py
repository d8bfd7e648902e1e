"""Starting the peers next to vr-serve, loading them with the driver, and their rows of the report.

Runs in the vr-bench process. Each peer gets its venv (bench/peers/venvs.py), then its server is
started with the served model's file, providers, threads and max batch, the frame budget and the
batch window. The load for a peer runs in a driver process inside the peer's venv
(bench/peers/drive.py), which writes its per-frame records back; they are summarized by the same
code as vr-serve's (bench/stats.py), so every key means the same for every server.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vr_recognition.bench.errors import BenchError
from vr_recognition.bench.peers.drive import write_frames
from vr_recognition.bench.peers.specs import PEERS, PeerSpec
from vr_recognition.bench.peers.venvs import PeerVenv, ensure_venv, triton_env
from vr_recognition.bench.records import LoadConfig, LoadRun, StreamRecord
from vr_recognition.bench.spawn import SpawnedServer
from vr_recognition.bench.stats import Summary, top1_agreement, top1_by_frame

DRIVER_SLACK_S = 120.0  # beyond warm-up + duration + drain, what a driver may take (imports, connecting)


@dataclass
class PeerSettings:
    """What every peer is configured with, taken from vr-serve's own settings for the run."""

    model: Path
    providers: str
    threads: int | None
    max_batch: int
    batch_wait_ms: float

    def server_args(self, budget_ms: float) -> list[str]:
        args = ["--model", str(self.model), "--providers", self.providers, "--max-batch", str(self.max_batch),
                "--batch-wait-ms", f"{self.batch_wait_ms:g}", "--budget-ms", f"{budget_ms:g}"]  # fmt: skip
        return args + (["--threads", str(self.threads)] if self.threads else [])


@dataclass
class Peer:
    spec: PeerSpec
    venv: PeerVenv
    server: SpawnedServer | None = None
    budget_ms: float | None = None

    def start(self, settings: PeerSettings, budget_ms: float) -> None:
        """(Re)start the server when the frame budget (its queue timeout) changes."""
        if self.server is not None and self.budget_ms == budget_ms:
            return
        self.stop()
        env = triton_env(self.venv.python) if self.spec.name == "triton" else {}
        command = [str(self.venv.python), "-m", self.spec.server_module, *settings.server_args(budget_ms)]
        self.server = SpawnedServer(
            command,
            self.spec.name,
            ready_timeout=300.0,
            env=env,
            schemes=self.spec.url_scheme,
            own_group=True,
        )
        self.budget_ms = budget_ms

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@dataclass
class PeerSet:
    """The peers of one vr-bench run (and the ones that could not be made, with why)."""

    peers: list[Peer] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    venv_seconds: dict[str, float | None] = field(default_factory=dict)

    def stop(self) -> None:
        for peer in self.peers:
            peer.stop()


def prepare_peers(names: list[str], root: Path | None, log) -> PeerSet:
    """Each peer's venv (created or from the cache); a peer whose venv fails is skipped, with why."""
    result = PeerSet()
    for name in names:
        spec = PEERS[name]
        try:
            venv = ensure_venv(spec, root, log)
        except BenchError as exc:
            result.skipped[name] = f"venv failed: {exc}"
            log(f"vr-bench: {name} skipped: {str(exc)[-800:]}")
            continue
        result.venv_seconds[name] = venv.created_s
        result.peers.append(Peer(spec, venv))
    return result


def write_frames_file(frames, folder: Path) -> Path:
    path = folder / "frames.bin"
    write_frames(path, [frame.jpeg for frame in frames])
    return path


def run_peer(peer: Peer, mode: str, config: LoadConfig, frames_file: Path, precise: bool) -> LoadRun:
    """One configuration against one peer in one client mode, through its driver process."""
    assert peer.server is not None
    with tempfile.TemporaryDirectory(prefix="vr-bench-peer-") as folder:
        job_path, out_path = Path(folder) / "job.json", Path(folder) / "out.json"
        job = {
            "peer": peer.spec.name,
            "url": peer.server.url,
            "mode": mode,
            "config": dataclasses.asdict(dataclasses.replace(config, url=peer.server.url)),
            "frames": str(frames_file),
            "out": str(out_path),
            "precise": precise,
        }
        job_path.write_text(json.dumps(job))
        limit = config.warmup_s + config.duration_s + config.drain_s + DRIVER_SLACK_S
        command = [str(peer.venv.python), "-m", "vr_recognition.bench.peers.drive", str(job_path)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise BenchError(f"the {peer.spec.name} driver did not finish within {limit:.0f} s") from None
        if done.returncode != 0 or not out_path.is_file():
            raise BenchError(
                f"the {peer.spec.name} driver failed ({done.returncode}):\n{done.stderr[-3000:]}"
            )
        result = json.loads(out_path.read_text())
    run = LoadRun(
        config=config,
        streams=[StreamRecord.from_json(s) for s in result["streams"]],
        measured_from=config.warmup_frames,
        provider=result.get("provider") or provider_from_ready(peer.server.ready_line),
        model_name="",
        server_name=f"{peer.spec.name} ({mode})",
        notes=[f"{peer.spec.name} {mode}: {note}" for note in result.get("notes", [])],
    )
    run.pacing = result.get("pacing") or {}
    run.notes += [
        f"{peer.spec.name} {mode} stream {i}: {r.failure}" for i, r in enumerate(run.streams) if r.failure
    ]
    return run


def provider_from_ready(line: str) -> str:
    """'colour on CPUExecutionProvider (pytriton ...)' -> 'CPUExecutionProvider'."""
    words = line.split(" on ", 1)
    return words[1].split(" ", 1)[0] if len(words) == 2 else ""


def row(server: str, mode: str, protocol: str, settings: str, summary: Summary, run: LoadRun,
        distinct_frames: int, reference: list[str | None] | None) -> dict:  # fmt: skip
    """One line of the comparison: the same keys as vr-serve's own report, plus who and how."""
    labels = top1_by_frame(run, distinct_frames)
    return {
        "server": server,
        "mode": mode,
        "protocol": protocol,
        "settings": settings,
        "provider": run.provider,
        "skipped": None,
        **summary.report,
        "pacing": run.pacing,
        "top1_by_frame": labels,
        "top1_agreement": None if reference is None else top1_agreement(run, reference),
        "notes": run.notes,
    }


def skipped_row(server: str, mode: str, protocol: str, why: str) -> dict:
    return {"server": server, "mode": mode, "protocol": protocol, "settings": None, "provider": None,
            "skipped": why}  # fmt: skip


def peer_settings_text(spec: PeerSpec, ready_line: str) -> str:
    """What the peer said it runs with (its ready line, after the model name and provider)."""
    start = ready_line.find("(")
    return ready_line[start + 1 : ready_line.rfind(")")] if start >= 0 else spec.title
