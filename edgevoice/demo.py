"""``edgevoice demo``: the whole daemon against the built-in local agent.

With file audio (the default) a short spoken question shipped with the package goes in,
the agent (a parrot: it answers with what it heard) replies, the speaker's timeline is
written to a WAV, and a summary is printed. With ``--audio alsa`` a person talks to the
parrot through the real microphone and speaker until Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
from importlib import resources

from edgevoice.config import ConfigError, ini_text, parse
from edgevoice.logsetup import setup_logging


def question_wav() -> str:
    """Path of the spoken question shipped with the package."""
    return str(resources.files("edgevoice") / "data" / "question.wav")


def run_demo(args) -> int:
    from edgevoice.daemon import Daemon
    from edgevoice.localagent import AgentOptions, LocalAgent

    setup_logging(args.log_level)
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - t0:6.2f}s] {text}", flush=True)

    agent = LocalAgent(dialect=args.dialect, options=AgentOptions())
    agent.start()
    say(f"local {args.dialect} agent listening on {agent.ws_base}")
    sections = agent.config_values()
    if args.audio == "file":
        source = args.input or question_wav()
        output = os.path.abspath(args.output)
        sections["audio"] = {"backend": "file", "input_file": source, "output_file": output}
    else:
        sections["audio"] = {"backend": "alsa", "input_device": args.input_device,
                             "output_device": args.output_device}
    sections["session"] = {"connect_timeout": "5", "reconnect_max_delay": "5"}
    with tempfile.TemporaryDirectory(prefix="edgevoice-demo-") as tmp:
        # its own state: the device's privacy mute and transcript are not the demo's
        sections["agent"]["state_dir"] = tmp
        path = os.path.join(tmp, "edgevoice.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(ini_text(sections))
        try:
            config = parse(open(path, encoding="utf-8").read(), path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            agent.stop()
            return 78
        daemon = Daemon(config)
        last = {"state": None}

        def progress(state: str, detail: str) -> None:
            if state != last["state"]:
                last["state"] = state
                words = {"connecting": "connecting…", "listening": "listening",
                         "speaking": "agent speaking", "offline": "offline",
                         "stopped": "stopped"}
                say(words.get(state, state) + (f" ({detail})" if detail else ""))

        daemon.add_listener(progress)
        runner = threading.Thread(target=daemon.run, name="edgevoice-demo-daemon")
        runner.start()
        try:
            if args.audio == "file":
                ok = _wait_for_answer(daemon, agent, args.timeout, say)
            else:
                say("talk to the parrot agent; Ctrl-C to stop")
                _wait_for_ctrl_c()
                ok = True
        finally:
            daemon.stop()
            runner.join(5.0)
            agent.stop()
    stats = daemon.stats
    lat = stats.latency_percentiles()
    print()
    print("summary")
    print(f"  frames sent            {stats.frames_sent}")
    print(f"  mic frames dropped     {stats.frames_dropped}")
    print(f"  answer audio received  {stats.agent_audio_seconds:.2f} s")
    print(f"  capture-to-wire        p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms")
    if args.audio == "file":
        print(f"  speaker recording      {output}")
    if not ok:
        print("no answer arrived in time", file=sys.stderr)
        return 1
    return 0


def _wait_for_answer(daemon, agent, timeout: float, say) -> bool:
    """Wait until the agent's reply has been sent and played out."""
    deadline = time.monotonic() + timeout
    try:
        agent.wait_for("user_speech_end", timeout=timeout)
        say("question heard by the agent")
        agent.wait_for("reply_end", timeout=max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        return False
    # The answer is in the playback buffer; wait until the speaker has played it all.
    while time.monotonic() < deadline:
        engine = daemon.engine
        if engine is not None and engine.buffer.buffered_bytes == 0:
            say(f"answer played ({daemon.stats.agent_audio_seconds:.2f} s of audio)")
            return True
        time.sleep(0.05)  # polling a counter, not synchronising
    return False


def _wait_for_ctrl_c() -> None:
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *a: done.set())
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    while not done.wait(0.5):
        pass
