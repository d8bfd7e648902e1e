"""The per-stream rules, tested as pure code: no socket, no event loop, a clock the test moves.

The live tests (test_server_*.py) check that the asyncio adapter carries these decisions out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from vr_recognition.server import protocol as p
from vr_recognition.server import session as session_module
from vr_recognition.server.admission import Refusal, ServerState, refusal
from vr_recognition.server.session import Close, ErrorThrottle, Processed, Session, State

MODEL = p.ModelInfo("colours", "v1", ("red", "green", "blue"), 64, 64, "CPUExecutionProvider")
DEFAULTS = p.StreamSettings(top_k=5, budget_ms=11.1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def new_session(clock: Clock | None = None) -> Session:
    return Session(defaults=DEFAULTS, limits=p.Limits(), server_version="test", clock=clock or Clock())


def hello(**settings) -> str:
    return p.encode_client_message(
        p.ClientHello(protocol=1, client_name="t", client_version="1", settings=p.StreamSettings(**settings))
    )


def frame(frame_id: int = 1, **fields) -> bytes:
    values = {
        "frame_id": frame_id,
        "capture_time_us": 1000 + frame_id,
        "image_format": p.ImageFormat.RGB8,
        "width": 2,
        "height": 2,
        "payload": bytes(12),
    }
    return p.encode_frame(p.Frame(**{**values, **fields}))


def opened(clock: Clock | None = None, **settings) -> Session:
    session = new_session(clock)
    events = session.receive(hello(**settings))
    assert events.hello is not None
    assert events.send == []
    answer = session.open(MODEL, None)
    assert isinstance(answer.send[0], p.ServerHello)
    return session


def test_hello_must_come_first():
    session = new_session()
    for message in (frame(), p.encode_client_message(p.Ping(id=1))):
        events = session.receive(message)
        (error,) = events.send
        assert isinstance(error, p.ErrorMessage)
        assert (error.code, error.fatal) == ("hello_required", False)
        assert events.close is None
        assert events.frame is None
    assert session.state is State.AWAITING_HELLO
    assert session.receive(hello()).hello is not None


def test_hello_with_no_common_version_is_fatal_with_close_1002():
    session = new_session()
    text = '{"type":"hello","protocol":9,"min_protocol":7,"client":{"name":"t","version":"1"}}'
    events = session.receive(text)
    (error,) = events.send
    assert (error.code, error.fatal) == ("unsupported_version", True)
    assert events.close == Close(p.CloseCode.PROTOCOL_ERROR, "unsupported_version")
    assert session.state is State.CLOSED
    assert session.receive(hello()).send == []  # nothing more is answered


def test_no_hello_in_time_closes_with_1008():
    events = new_session().hello_timed_out()
    assert events.send[0].code == "hello_required"
    assert events.close == Close(p.CloseCode.POLICY_VIOLATION, "hello_required")


def test_server_hello_carries_the_effective_settings():
    session = new_session()
    session.receive(hello(top_k=50, gaze_crop_scale=0.5))
    (server_hello,) = session.open(MODEL, None).send
    assert server_hello.model is MODEL
    assert server_hello.session.top_k == 3  # clamped to the model's classes
    assert server_hello.session.budget_ms == 11.1  # the server's default
    assert server_hello.session.gaze_crop_scale == 0.5
    assert server_hello.protocol == 1


@pytest.mark.parametrize(
    ("code", "close"),
    [("too_many_streams", p.CloseCode.TRY_AGAIN_LATER), ("shutting_down", p.CloseCode.TRY_AGAIN_LATER)],
)
def test_a_stream_refused_at_hello_gets_a_fatal_error_and_a_close(code, close):
    session = new_session()
    session.receive(hello())
    events = session.open(MODEL, Refusal(p.ErrorCode(code), "no"))
    assert (events.send[0].code, events.send[0].fatal) == (code, True)
    assert events.close == Close(close, code)


def test_admission_is_one_rule():
    assert refusal(ServerState(False, MODEL, 3), max_streams=4) is None
    assert refusal(ServerState(False, MODEL, 4), max_streams=4).code is p.ErrorCode.TOO_MANY_STREAMS
    assert refusal(ServerState(False, None, 0), max_streams=4).code is p.ErrorCode.MODEL_UNAVAILABLE
    assert refusal(ServerState(True, MODEL, 0), max_streams=4).code is p.ErrorCode.SHUTTING_DOWN


def test_second_hello_is_a_duplicate():
    session = opened()
    (error,) = session.receive(hello()).send
    assert (error.code, error.fatal) == ("duplicate_hello", False)
    assert session.state is State.OPEN


def test_configure_merges_and_answers_with_the_settings_in_force():
    session = opened(top_k=2)
    update = p.Configure(p.StreamSettings(budget_ms=30.0, smoothing_ema_alpha=0.5))
    (configured,) = session.receive(p.encode_client_message(update)).send
    assert isinstance(configured, p.Configured)
    assert configured.session.top_k == 2  # kept from hello
    assert configured.session.budget_ms == 30.0
    assert configured.session.smoothing_ema_alpha == 0.5
    assert session.budget_s == pytest.approx(0.030)


def test_ping_is_answered_with_the_clients_id_and_time():
    clock = Clock()
    session = opened(clock)
    clock.now = 123.456789
    (pong,) = session.receive(p.encode_client_message(p.Ping(id="a", client_time_us=42))).send
    assert (pong.id, pong.client_time_us, pong.server_time_us) == ("a", 42, 123_456_789)


def test_a_frame_is_queued_with_its_deadline():
    clock = Clock()
    session = opened(clock, budget_ms=20)
    events = session.receive(frame(7))
    assert events.send == []
    assert events.frame.frame.frame_id == 7
    assert events.frame.arrived == clock.now
    assert events.frame.deadline == pytest.approx(clock.now + 0.020)


def test_a_bad_frame_gets_its_error_and_nothing_is_queued():
    session = opened()
    events = session.receive(b"NOPE" + bytes(100))
    (error,) = events.send
    assert isinstance(error, p.ErrorMessage)
    assert error.code == "bad_magic"
    assert events.frame is None
    # a frame whose id was readable is answered per frame
    data = bytearray(frame(3))
    data[60] = 99  # image format byte: unknown
    (result,) = session.receive(bytes(data)).send
    assert isinstance(result, p.Result)
    assert (result.frame_id, result.status, result.error.code) == (3, p.Status.ERROR, "unsupported_format")


def test_bad_json_does_not_end_the_stream():
    session = opened()
    (error,) = session.receive("{nope").send
    assert (error.code, error.fatal) == ("bad_json", False)
    assert session.state is State.OPEN
    assert session.receive(frame()).frame is not None


def test_rejected_messages_are_throttled_after_a_burst():
    clock = Clock()
    session = opened(clock)
    pauses = [session.receive(b"garbage").pause_s for _ in range(int(session_module.REJECT_BURST) + 10)]
    assert pauses[: int(session_module.REJECT_BURST)] == [0.0] * int(session_module.REJECT_BURST)
    assert all(pause > 0 for pause in pauses[-5:])
    assert pauses[-1] == pytest.approx(10 / session_module.REJECT_RATE_PER_S)
    clock.now += 60.0  # a quiet minute refills the bucket
    assert session.receive(b"garbage").pause_s == 0.0
    assert session.receive(frame()).pause_s == 0.0  # accepted frames are never throttled


def test_error_throttle_refills_at_its_rate():
    clock = Clock()
    throttle = ErrorThrottle(rate=10, burst=2, clock=clock)
    assert [throttle.delay() for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]
    clock.now += 0.1
    assert throttle.delay() == pytest.approx(0.1)


def test_while_stopping_frames_are_answered_shutting_down():
    session = opened()
    session.stop_accepting()
    events = session.receive(frame(9))
    assert events.frame is None
    (result,) = events.send
    assert (result.frame_id, result.status, result.error.code) == (9, p.Status.ERROR, "shutting_down")


def test_stale_and_processed_frames_are_answered_with_what_they_carried():
    clock = Clock()
    session = opened(clock)
    pose = p.Pose((1.0, 2.0, 3.0), (0.0, 0.0, 0.0, 1.0))
    first = session.receive(frame(1, pose=pose, gaze=(0.25, 0.75))).frame
    clock.now += 0.005
    stale = session.stale(first)
    assert (stale.frame_id, stale.status, stale.top_k) == (1, p.Status.DROPPED_STALE, ())
    assert stale.pose == pose
    assert stale.gaze == (0.25, 0.75)
    assert stale.timings_ms["total"] == pytest.approx(5.0)
    assert stale.model_version == "v1"

    second = session.receive(frame(2)).frame
    predictions = (p.Prediction("blue", 2, 0.9),)
    processed = Processed(p.Status.OK, {"decode": 0.002, "total": 0.01}, predictions, model_version="v2")
    result = session.result(second, processed)
    assert (result.frame_id, result.status) == (2, p.Status.OK)
    assert (result.top_k, result.model_version) == (predictions, "v2")
    assert result.timings_ms == {"decode": 2.0, "total": 10.0}


def test_model_change_is_announced_and_restarts_smoothing():
    session = opened(smoothing_ema_alpha=0.5)
    model_a, model_b = object(), object()
    first = session.smooth(np.array([1.0, 0.0]), 0.5, model_a)
    second = session.smooth(np.array([0.0, 1.0]), 0.5, model_a)
    assert list(first) == [1.0, 0.0]
    assert list(second) == [0.5, 0.5]
    assert list(session.smooth(np.array([0.0, 1.0]), 0.5, model_b)) == [0.0, 1.0]  # restarted
    new = p.ModelInfo("colours", "v2", ("red", "green"), 64, 64)
    (changed,) = session.model_changed(new).send
    assert changed == p.ModelChanged(new)
    assert session.settings().top_k == 2


def test_the_session_module_does_no_io():
    """No asyncio, no websockets, no sockets: the rules stay testable as pure code."""
    source = Path(session_module.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "websockets", "socket", "selectors", "threading"}, imported


# --- protocol v1.1 -------------------------------------------------------------------------------------


def test_configure_null_returns_a_setting_to_the_servers_default():
    session = opened(top_k=2, smoothing_ema_alpha=0.5, gaze_crop_scale=0.4)
    text = '{"type":"configure","smoothing":null,"gaze_crop":null,"top_k":null}'
    (configured,) = session.receive(text).send
    assert configured.session.smoothing_ema_alpha is None  # the server's default: off
    assert configured.session.gaze_crop_scale is None
    assert configured.session.top_k == 3  # default 5, clamped to the model's 3 classes
    (absent,) = session.receive('{"type":"configure","budget_ms":20}').send
    assert absent.session.smoothing_ema_alpha is None  # absent: unchanged
    assert absent.session.budget_ms == 20


def test_any_top_k_is_accepted_and_clamped():
    session = new_session()
    session.receive(hello(top_k=100_000))
    (server_hello,) = session.open(MODEL, None).send
    assert server_hello.session.top_k == 3
    many = p.ModelInfo("many", "v1", tuple(f"c{i}" for i in range(500)), 64, 64)
    session = new_session()
    session.receive(hello(top_k=100_000))
    assert session.open(many, None).send[0].session.top_k == p.Limits().max_top_k


def test_min_protocol_above_protocol_fails_negotiation_fatally():
    events = new_session().receive('{"type":"hello","protocol":1,"min_protocol":2}')
    (error,) = events.send
    assert (error.code, error.fatal) == ("unsupported_version", True)
    assert events.close == Close(p.CloseCode.PROTOCOL_ERROR, "unsupported_version")


def test_going_away_says_why_before_closing_with_1001():
    session = opened()
    events = session.going_away()
    assert (events.send[0].code, events.send[0].fatal) == ("shutting_down", True)
    assert events.close == Close(p.CloseCode.GOING_AWAY, "shutting_down")


def test_refusal_at_hello_uses_a_close_code_every_client_receives():
    session = new_session()
    session.receive(hello())
    events = session.open(MODEL, Refusal(p.ErrorCode.TOO_MANY_STREAMS, "full"))
    assert events.close.code == 4013  # Mono's ClientWebSocket cannot receive 1012-1014
