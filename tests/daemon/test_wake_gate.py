"""edgevoice.wake's capture side without a daemon: what the detector hears, which frames are
held after the wake word and in what order they reach a session's mic queue. The host and
the session are small doubles; the detector, the VAD and the mic queue are the real ones."""

from __future__ import annotations


import numpy as np
import pytest

from edgevoice.audio.file_backend import resample_pcm
from edgevoice.flow import MicQueue
from edgevoice.lifecycle import DaemonState
from edgevoice.wake import BUTTON, FRAME_S, WAKE_TAIL_S, WakeWord
from tests.support.wake import Host
from tests.support.speech import espeak, silence, the_question


class StreamingSession:
    def __init__(self, frames: int = 1000) -> None:
        self.mic = MicQueue(frames)
        self.mic_open = True
        self.streaming = False
        self.streamed_since = None
        self.live: list[bytes] = []

    def offer_frame(self, frame: bytes, t: float) -> None:
        self.live.append(frame)

    def queued(self) -> list[bytes]:
        out = []
        while (item := self.mic.get(0)) is not None:
            out.append(item[0])
        return out


def frames_of(samples: np.ndarray, rate: int) -> list[bytes]:
    pcm = samples.astype("<i2").tobytes()
    if rate != 16000:
        pcm = resample_pcm(pcm, 16000, rate)
    size = rate // 50 * 2
    return [pcm[i:i + size] for i in range(0, len(pcm) - size + 1, size)]


def numbered(frame: bytes, n: int) -> bytes:
    """``frame`` with its first sample replaced by ``n`` (to follow the order)."""
    return n.to_bytes(2, "little", signed=True) + frame[2:]


@pytest.mark.parametrize("rate", [16000, 24000])
def test_the_wake_word_is_heard_and_only_what_follows_it_is_held(rate):
    host = Host(rate)
    wake = WakeWord(host)
    wake.listen(host.engine)
    assert host.state is DaemonState.WAITING_FOR_WAKE and 'say "okay nabu"' in host.details[-1]
    before = frames_of(np.concatenate([silence(0.3), espeak("okay nabu"), silence(0.5)]), rate)
    after = frames_of(np.concatenate([silence(0.3), the_question()]), rate)
    sink = host.engine.frame_sink
    for i, frame in enumerate(before):
        sink(frame, i * FRAME_S)
    assert host.woken == ["okay_nabu"]
    assert wake.woken("okay_nabu") is True and wake.woken("okay_nabu") is False  # one session
    session = StreamingSession()
    host.engine.frame_sink = wake.sink(session)
    labelled = [numbered(f, -(k + 1)) for k, f in enumerate(after)]
    for k, frame in enumerate(labelled[:50]):  # the session is still connecting
        host.engine.frame_sink(frame, 10 + k * FRAME_S)
    assert session.queued() == [] and session.live == []
    session.streaming = True
    for k, frame in enumerate(labelled[50:]):
        host.engine.frame_sink(frame, 11 + k * FRAME_S)
    sent = session.queued() + session.live
    # everything after the wake word's 20 ms frame: the silence left in `before`, then the
    # question in order; nothing of the phrase itself (espeak's phrase ends before it fires)
    tail = len(sent) - len(labelled)
    assert sent[tail:] == labelled
    assert 0 < tail < len(before)
    assert all(np.abs(np.frombuffer(f, dtype="<i2")).max() < 50 for f in sent[:tail])
    assert wake.user_spoke_at > 10  # the question is speech


def test_voice_right_after_the_detection_is_dropped_as_the_phrases_tail():
    """Voiced frames right after the detection are the phrase's end: dropped until the
    first pause, WAKE_TAIL_S at most; from the pause on everything is held."""
    host = Host(16000)
    wake = WakeWord(host)
    wake.listen(host.engine)
    speech = frames_of(the_question()[int(0.4 * 16000):int(1.4 * 16000)], 16000)
    wake._listen_sink(bytes(640), 0.0)  # the first frame after listen() starts afresh
    wake._heard_at, wake._tail, wake._holding = 0.0, int(WAKE_TAIL_S / FRAME_S), True
    for i, frame in enumerate(speech):
        wake._listen_sink(frame, i * FRAME_S)
    dropped = len(speech) - len(wake._backlog)
    assert list(wake._backlog) == speech[dropped:]
    assert 3 <= dropped <= int(WAKE_TAIL_S / FRAME_S)  # webrtcvad hears a pause soon or not


def test_the_backlog_goes_to_a_small_mic_queue_in_order_as_room_frees():
    host = Host(16000)
    wake = WakeWord(host)
    wake.listen(host.engine)
    wake.woken(BUTTON)
    session = StreamingSession(frames=5)
    sink = wake.sink(session)
    quiet = bytes(640)
    frames = [numbered(quiet, k) for k in range(1, 31)]
    for k, frame in enumerate(frames[:20]):
        sink(frame, k * FRAME_S)
    session.streaming = True
    got = []
    for k, frame in enumerate(frames[20:]):
        sink(frame, 1 + k * FRAME_S)
        got += session.queued()  # the send thread empties the queue every frame
    for _ in range(10):
        sink(numbered(quiet, 99), 2.0)
        got += session.queued()
    order = [int.from_bytes(f[:2], "little", signed=True) for f in got + session.live]
    assert order[:30] == list(range(1, 31)) and session.mic.dropped == 0


def test_without_a_usable_model_only_the_button_wakes(tmp_path):
    broken = tmp_path / "hey_pi.json"
    broken.write_text("{not json")
    host = Host(16000, models=(str(broken),))
    wake = WakeWord(host)
    wake.listen(host.engine)
    assert wake.detector is None and "button" in host.details[-1]
    host.engine.frame_sink(bytes(640), 0.0)  # dropped, not held
    assert len(wake._backlog) == 0
    assert wake.woken(BUTTON) is True
    host.engine.frame_sink(bytes(640), 0.02)
    assert len(wake._backlog) == 1
