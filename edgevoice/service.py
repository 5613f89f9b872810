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
- the button and the LED (``[gpio]``), per ``[agent] mode``, and the privacy mute's
  switch (``[gpio] mute_pin``) and signals: SIGUSR1 mutes, SIGUSR2 unmutes, answered in
  ``$RUNTIME_DIRECTORY/mute-status.json`` for ``edgevoice mute``
  (:mod:`edgevoice.device.mute`).

The service is a :class:`~edgevoice.lifecycle.DaemonObserver` and a state listener of its
daemon: it hears of every state, command and tick on the session thread, and steers the
daemon only through its command methods.
"""

from __future__ import annotations

import logging
import signal
import threading

from edgevoice.config import EX_CONFIG, ConfigError, Config, load
from edgevoice.daemon import DEVICE_RETRY_S, Daemon
from edgevoice.device.button import initial_state
from edgevoice.device.mute import MUTE_SIGNAL, UNMUTE_SIGNAL, MuteAnswers, MuteSwitch
from edgevoice.lifecycle import DaemonObserver, DaemonState, Reload
from edgevoice.device.notify import StatusReporter, SystemdNotifier, ThreadHealth, WatchdogPinger
from edgevoice.device.reload import APPLIED, REJECTED, ReloadResults, runtime_dir
from edgevoice.metrics import MetricsError, MetricsExporter
from edgevoice.providers import DIALECTS
from edgevoice.volume import needs_reopen

log = logging.getLogger(__name__)

AGENT_SECTIONS = ("agent", *DIALECTS, "session", "barge_in")  # a change restarts the session
RESTART_ONLY_SECTIONS = ("gpio",)


class Service(DaemonObserver):
    def __init__(self, config_path: str, config: Config, *, notifier: SystemdNotifier | None = None,
                 pin_factory=None) -> None:
        self.path = config_path
        self.notifier = notifier or SystemdNotifier()
        self.reporter = StatusReporter(self.notifier)
        self.reloads = ReloadResults(runtime_dir())
        self.mute_answers = MuteAnswers(runtime_dir())
        self.pin_factory = pin_factory
        self.mode = None
        self.button = None
        self.led = None
        self.mute_switch: MuteSwitch | None = None
        self.health: ThreadHealth | None = None
        self.watchdog: WatchdogPinger | None = None
        self._ready_sent = False
        self._stopping_sent = False
        self._next_idle_check = 0.0
        self._last_ticks = -1
        self._why = ""
        start = initial_state(config.agent.mode)
        self.daemon = Daemon(config, start_session=start.start_session,
                             mic_open=start.mic_open or not config.gpio.enabled,
                             reloader=self._reload)
        self.daemon.add_listener(self.reporter)
        self.daemon.add_listener(self._on_state)
        self.daemon.add_observer(self)
        self.metrics = MetricsExporter(self.daemon)  # serves nothing until run()

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self.metrics.apply(self.daemon.config.metrics)
        except MetricsError as exc:
            log.error("%s", exc)
            return EX_CONFIG
        try:
            return self._run()
        finally:
            self.metrics.close()

    def _run(self) -> int:
        self._install_signals()
        self.mute_answers.write(self.daemon.muted)  # edgevoice mute status/toggle read it
        self._setup_gpio(self.daemon.config)
        try:
            return self.daemon.run()
        finally:
            self._send_stopping()
            if self.watchdog is not None:
                self.watchdog.stop()
            for part in (self.button, self.mute_switch, self.led):
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

        def mute(signum, frame):
            self.mute_answers.requested()
            self.daemon.set_muted(signum == MUTE_SIGNAL, "cli")

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)
        signal.signal(MUTE_SIGNAL, mute)
        signal.signal(UNMUTE_SIGNAL, mute)

    # -- the button and the LED -------------------------------------------------------------------
    def _setup_gpio(self, config: Config) -> None:
        g = config.gpio
        if not g.enabled:
            return
        from edgevoice.device.button import ButtonInput, ModeController
        from edgevoice.device.led import StatusLed

        self.mute_switch = MuteSwitch.from_settings(g, self.daemon.set_muted,
                                                    pin_factory=self.pin_factory)
        if self.mute_switch is not None and self.mute_switch.is_on:
            self.daemon.set_muted(True, "switch")  # applied before the microphone opens
        mode = config.agent.mode
        long_press = g.ptt_long_press_s if mode == "push-to-talk" else g.long_press_s
        self.mode = ModeController(mode, self.daemon, long_press,
                                   idle_timeout_s=config.agent.toggle_idle_s,
                                   multi_press_s=g.multi_press_s, volume_step=g.volume_step)
        self.led = StatusLed.from_settings(g, pin_factory=self.pin_factory)
        self.led.show(self.mode.initial_state().led)
        self.button = ButtonInput.from_settings(g, controller=self.mode,
                                                pin_factory=self.pin_factory)
        log.info("button on GPIO %s (%s mode), %s LED on GPIO %s", g.button_pin, mode, g.led,
                 g.led_pin if g.led != "rgb" else f"{g.red_pin}/{g.green_pin}/{g.blue_pin}")

    # -- what the daemon tells us (on its session thread) -------------------------------------
    def _on_state(self, state: DaemonState, detail: str) -> None:
        self._refresh()
        if state is DaemonState.STOPPING:
            self._send_stopping()

    def controls_changed(self) -> None:
        self._refresh()

    def mute_applied(self, result) -> None:
        self.mute_answers.write(result.muted, result.refused,
                                answers_request=result.source == "cli",
                                switch=self.mute_switch is not None and self.mute_switch.is_on)

    def activity(self) -> None:
        if self.mode is not None:
            self.mode.note_activity()

    def tick(self, now: float) -> None:
        if self.mode is not None and now >= self._next_idle_check:
            self._next_idle_check = now + 1.0
            self.mode.check_idle()

    def _send_stopping(self) -> None:
        if not self._stopping_sent:
            self._stopping_sent = True
            self.notifier.stopping("stopping")

    def _refresh(self) -> None:
        d = self.daemon
        if self.led is not None:
            from edgevoice.device.led import led_state_for
            self.led.show(led_state_for(d.state, muted=d.muted,
                                        mic_open=self.mode.mic_open if self.mode else True,
                                        session_active=d.session_active()))

    # -- systemd -----------------------------------------------------------------------------------
    def audio_opened(self, engine) -> None:
        d = self.daemon
        threads = engine.threads
        health = ThreadHealth(streaming=lambda: d.session is not None and d.session.streaming)
        health.watch("capture", lambda: engine.capture_progress, threads=threads[:1])
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
        if self.daemon.engine is None:  # the sound devices are being reopened
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

    def waiting_for_device(self, problem: str) -> None:
        # not READY yet: ask systemd for more start-up time while the device is missing
        self.notifier.extend_timeout(DEVICE_RETRY_S * 3, f"waiting for the sound device: "
                                                         f"{problem[:120]}")

    def _reload(self, old: Config) -> tuple[Reload, Config | None]:
        """Read the config from disk again (on the session thread): what changed from
        ``old``, and the new config to run (None: rejected, ``old`` stays)."""
        request = self.reloads.latest_request
        self.notifier.reloading("reloading the configuration")
        try:
            new = load(self.path)
        except ConfigError as exc:
            return self._reject(request, exc.problems)
        if new.metrics != old.metrics:  # served anew now, or the reload is rejected
            try:
                self.metrics.apply(new.metrics)
            except MetricsError as exc:
                return self._reject(request, [exc.problem])
        self.metrics.describe(new, self.daemon.config.agent.mode)
        logging.getLogger().setLevel(new.log.level.upper())
        if needs_reopen(old.audio, new.audio):  # the volume alone is applied on the fly
            change = Reload.AUDIO
        elif old.tools != new.tools or any(getattr(old, s) != getattr(new, s)
                                           for s in AGENT_SECTIONS):
            change = Reload.AGENT
        else:
            change = Reload.NOTHING
        if any(getattr(old, s) != getattr(new, s) for s in RESTART_ONLY_SECTIONS) or \
                old.agent.mode != new.agent.mode:
            log.warning("[gpio] and [agent] mode changes take effect after a restart: "
                        "sudo systemctl restart edgevoice")
        what = {Reload.NOTHING: "nothing that needs a new session changed",
                Reload.AGENT: "agent settings changed, starting a new session",
                Reload.AUDIO: "[audio] changed, reopening the sound devices"}[change]
        log.info("configuration reloaded: %s", what, extra={"event": "reloaded"})
        self.reporter.config_note("")
        self.notifier.ready(self.reporter.text())  # STATUS= the current state again
        self.reloads.write(request, APPLIED, what)
        self.metrics.counters.reloaded("ok")
        return change, new

    def _reject(self, request: float, problems: list) -> tuple[Reload, None]:
        for problem in problems:
            log.error("reload rejected: %s", problem, extra={"event": "reload_rejected"})
        log.error("the new configuration has %d problem(s); still running the previous "
                  "one (fix it, then: sudo systemctl reload edgevoice)", len(problems))
        self.reporter.config_note(f"reload rejected ({len(problems)} problem(s)), "
                                  "running the previous configuration")
        self.notifier.ready(self.reporter.text())
        self.reloads.write(request, REJECTED, f"{len(problems)} problem(s) in {self.path}",
                           problems)
        self.metrics.counters.reloaded("rejected")
        return Reload.REJECTED, None
