"""``edgevoice run``: the daemon plus what makes it a service on a device.

- systemd: ``READY=1`` once the config is valid and the sound devices are open (being
  offline is a state, not a failure), ``STATUS=`` lines for ``systemctl status``,
  ``WATCHDOG=1`` only while the capture, player, send and receive threads are alive and
  moving, ``RELOADING=1``/``READY=1`` around a reload, ``STOPPING=1`` on the way out.
- SIGHUP (``systemctl reload edgevoice``) re-reads the config: a valid one is applied (the
  session restarts only if agent settings changed, the sound devices reopen only if
  ``[audio]`` changed); an invalid one is rejected with its errors in the journal and the
  running config stays. Either way the outcome goes to ``$RUNTIME_DIRECTORY`` for the
  unit's ``ExecReload=edgevoice reload`` helper (:mod:`edgevoice.device.reload`), so
  ``systemctl reload`` fails when the config was rejected.
- the button and the LED (``[gpio]``), per ``[agent] mode``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from edgevoice.config import ConfigError, Config, load
from edgevoice.daemon import DEVICE_RETRY_S, Daemon
from edgevoice.device.notify import StatusReporter, SystemdNotifier, ThreadHealth, WatchdogPinger
from edgevoice.device.reload import APPLIED, REJECTED, ReloadResults, runtime_dir
from edgevoice.providers import DIALECTS

log = logging.getLogger(__name__)

AGENT_SECTIONS = ("agent", *DIALECTS, "session", "barge_in")  # a change restarts the session
RESTART_ONLY_SECTIONS = ("gpio",)


class _Control:
    """The button's view of the daemon: every command also refreshes the LED and status."""

    def __init__(self, daemon: Daemon, refresh) -> None:
        self._daemon = daemon
        self._refresh = refresh

    def __getattr__(self, name):
        target = getattr(self._daemon, name)
        if name in ("set_muted", "set_mic_open", "start_session", "end_session"):
            def command(*args):
                target(*args)
                self._refresh()
            return command
        return target


class Service:
    def __init__(self, config_path: str, config: Config, *, notifier: SystemdNotifier | None = None,
                 pin_factory=None) -> None:
        self.path = config_path
        self.notifier = notifier or SystemdNotifier()
        self.reporter = StatusReporter(self.notifier)
        self.reloads = ReloadResults(runtime_dir())
        self.pin_factory = pin_factory
        self.mode = None
        self.button = None
        self.led = None
        self.health: ThreadHealth | None = None
        self.watchdog: WatchdogPinger | None = None
        self._ready_sent = False
        self._next_idle_check = 0.0
        self._last_ticks = -1
        self._why = ""
        start = config.agent.mode != "toggle"
        self.daemon = Daemon(config, start_session=start)
        d = self.daemon
        d.add_listener(self.reporter)
        d.add_listener(self._on_state)
        d.on_audio_ready = self._audio_ready
        d.on_waiting_for_device = self._waiting_for_device
        d.on_tick = self._tick
        d.reload_hook = self._reload

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        self._setup_gpio(self.daemon.config)
        try:
            return self.daemon.run()
        finally:
            self.notifier.stopping("stopping")
            if self.watchdog is not None:
                self.watchdog.stop()
            for part in (self.button, self.led):
                if part is not None:
                    part.close()

    def stop(self) -> None:
        self.daemon.stop()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # tests run the service on a thread and call stop() themselves

        def stop(signum, frame):
            log.info("%s received, stopping", signal.Signals(signum).name)
            self.daemon.stop()

        def reload(signum, frame):
            self.reloads.requested()
            log.info("SIGHUP received: reloading %s", self.path)
            self.daemon.request_reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    # -- the button and the LED -------------------------------------------------------------------
    def _setup_gpio(self, config: Config) -> None:
        g = config.gpio
        if not g.enabled:
            return
        from edgevoice.device.button import ButtonInput, ModeController
        from edgevoice.device.led import StatusLed

        mode = config.agent.mode
        long_press = g.ptt_long_press_s if mode == "push-to-talk" else g.long_press_s
        control = _Control(self.daemon, self._refresh)
        self.mode = ModeController(mode, control, long_press,
                                   idle_timeout_s=config.agent.toggle_idle_s)
        start = self.mode.initial_state()
        self.daemon.set_mic_open(start.mic_open)
        self.daemon.set_muted(start.muted)
        self.daemon.on_activity = self.mode.note_activity
        self.led = StatusLed.from_settings(g, pin_factory=self.pin_factory)
        self.led.show(start.led)

        class _Pins:  # the button with this mode's long-press time
            enabled, button_pin, button_active_high = g.enabled, g.button_pin, \
                g.button_active_high
            long_press_s = long_press

        self.button = ButtonInput.from_settings(_Pins, controller=self.mode,
                                                pin_factory=self.pin_factory)
        log.info("button on GPIO %s (%s mode), %s LED on GPIO %s", g.button_pin, mode, g.led,
                 g.led_pin if g.led != "rgb" else f"{g.red_pin}/{g.green_pin}/{g.blue_pin}")

    def _on_state(self, state: str, detail: str) -> None:
        self._refresh()

    def _refresh(self) -> None:
        d = self.daemon
        muted = self.mode.muted if self.mode else False
        if self.led is not None:
            from edgevoice.device.led import led_state_for
            self.led.show(led_state_for(d.state, muted=muted,
                                        mic_open=self.mode.mic_open if self.mode else True,
                                        session_active=d.session_active()))
        self.reporter.annotate("muted" if muted else "")

    # -- systemd -----------------------------------------------------------------------------------
    def _audio_ready(self, engine) -> None:
        d = self.daemon
        threads = engine.threads
        health = ThreadHealth(streaming=lambda: d.session is not None and d.session.streaming)
        health.watch("capture", lambda: engine.frames_captured, threads=threads[:1])
        health.watch("player", lambda: engine.blocks_played, threads=threads[1:2])
        health.watch("send", lambda: d.stats.frames_sent, threads=self._session_threads("send"),
                     only_while_streaming=True)
        health.watch("recv", None, threads=self._session_threads("recv"),
                     only_while_streaming=True)
        self.health = health
        if not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready("sound devices open")
            interval = self.notifier.watchdog_interval()
            if interval:
                self.watchdog = WatchdogPinger(self.notifier, self._healthy, interval,
                                               describe=self._problem)
                self.watchdog.start()
        else:
            self.notifier.ready("sound devices reopened")

    def _healthy(self) -> bool:
        """The session thread moves (ticks), and so do the audio and network threads;
        while the sound devices are being reopened only the session thread counts."""
        ticks = self.daemon.ticks
        moved, self._last_ticks = ticks != self._last_ticks, ticks
        if not moved:
            self._why = "the session thread is stuck"
            return False
        if self.daemon.engine_restarting:
            self._why = ""
            return True
        ok = self.health.healthy()
        self._why = self.health.problem
        return ok

    def _problem(self) -> str:
        return self._why

    def _session_threads(self, name: str):
        wanted = f"edgevoice-{name}"

        def threads():
            session = self.daemon.session
            return [t for t in session.threads if t.name == wanted] if session else []
        return threads

    def _waiting_for_device(self, problem: str) -> None:
        # not READY yet: ask systemd for more start-up time while the device is missing
        self.notifier.extend_timeout(DEVICE_RETRY_S * 3, f"waiting for the sound device: "
                                                         f"{problem[:120]}")

    def _tick(self) -> None:
        now = time.monotonic()
        if self.mode is not None and now >= self._next_idle_check:
            self._next_idle_check = now + 1.0
            self.mode.check_idle()

    def _reload(self) -> str | None:
        """Apply a new config from disk; returns "audio", "agent" or None (nothing to
        restart)."""
        request = self.reloads.latest_request
        self.notifier.reloading("reloading the configuration")
        try:
            new = load(self.path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected: %s", problem, extra={"event": "reload_rejected"})
            log.error("the new configuration has %d problem(s); still running the previous "
                      "one (fix it, then: sudo systemctl reload edgevoice)", len(exc.problems))
            self.reporter.config_note(f"reload rejected ({len(exc.problems)} problem(s)), "
                                      "running the previous configuration")
            self.notifier.ready(self.reporter.text())
            self.reloads.write(request, REJECTED, f"{len(exc.problems)} problem(s) in "
                               f"{self.path}", exc.problems)
            return None
        old = self.daemon.config
        self.daemon.config = new
        logging.getLogger().setLevel(new.log.level.upper())
        if old.audio != new.audio:
            change = "audio"
        elif old.tools != new.tools or any(getattr(old, s) != getattr(new, s)
                                           for s in AGENT_SECTIONS):
            change = "agent"
        else:
            change = None
        if any(getattr(old, s) != getattr(new, s) for s in RESTART_ONLY_SECTIONS) or \
                old.agent.mode != new.agent.mode:
            log.warning("[gpio] and [agent] mode changes take effect after a restart: "
                        "sudo systemctl restart edgevoice")
        what = {None: "nothing that needs a new session changed",
                "agent": "agent settings changed, starting a new session",
                "audio": "[audio] changed, reopening the sound devices"}[change]
        log.info("configuration reloaded: %s", what, extra={"event": "reloaded"})
        self.reporter.config_note("")
        self.notifier.ready(self.reporter.text())  # STATUS= the current state again
        self.reloads.write(request, APPLIED, what)
        return change
