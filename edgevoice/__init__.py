"""edgevoice: a voice terminal daemon for cloud conversational agents.

A map for a newcomer: where the threads are, and where the seams are.

Threads (Python names; the kernel sees ``ev-…``, so ``top -H`` tells them apart)
==============================================================================

Each: *started by* · *loops on* · *blocks on*.

- **main** (``edgevoice run``, :mod:`edgevoice.service`) · nothing; the signal handlers
  run here (SIGTERM/SIGINT: stop, SIGHUP: reload) · joining edgevoice-session.
- **edgevoice-session** (:meth:`daemon.Daemon.run`) · the :class:`lifecycle.Inbox`:
  commands and session events; every round ticks the observers and checks the session's
  link; owns the state, opens sessions, reconnects with backoff · ``Inbox.get`` (100 ms at
  most), a session's bootstrap and handshake (beating every 50 ms for the watchdog).
- **edgevoice-capture** (:meth:`audio.engine.AudioEngine.start`) · mic reads → resample →
  20 ms frames → echo canceller → ``Session.offer_frame`` (barge-in detector, mic queue)
  · the device read (ALSA, paced by the hardware).
- **edgevoice-player** (:meth:`audio.engine.AudioEngine.start`) · playback buffer →
  speaker, silence on underrun · the device write.
- **edgevoice-send** (:meth:`session.Session.open`) · mic queue → ``provider.encode_audio``
  → WebSocket, and pings · ``MicQueue.get`` (200 ms), the socket send (5 s at most).
- **edgevoice-recv** (:meth:`session.Session.open`) · WebSocket → ``provider.decode`` →
  playback, flush on interruption, everything else to the inbox · the socket read (5 s
  timeout, then again).
- **edgevoice-connect**, **edgevoice-<bootstrap>** (:func:`transport.call_with_deadline`)
  · once: the WebSocket handshake or the REST bootstrap · the socket, cut at
  ``connect_timeout``.
- **edgevoice-tool** (:meth:`tools.ToolRunner.submit`) · once per tool call: the program,
  then the reply · the tool's process (``tool_timeout``).
- **edgevoice-watchdog** (:class:`device.notify.WatchdogPinger`) · health check →
  ``WATCHDOG=1`` only while the threads above move · ``Event.wait`` (half ``WatchdogSec``).
- **gpiozero's own** (:mod:`device.button`, :mod:`device.led`) · pin edges, the hold
  timer, LED blinking and pulsing · gpiozero's waits.

Only edgevoice-session changes the daemon's state (:class:`lifecycle.DaemonState`); other
threads ask for changes with :class:`lifecycle.Command` orders on its inbox (the button,
signals) or hand it events (send, recv, capture). Threads that must end are joined with a
deadline, and one that does not end is named in the log (:func:`threads.join_threads`).

Seams
=====

- **Provider** (:mod:`edgevoice.providers`, interface in :mod:`edgevoice.providers.base`):
  one module per agent dialect, a pure translator (config → how to open a session, mic
  frame → wire message, wire message → typed events, close → an
  :class:`~providers.base.Outcome`). No thread, no socket: the session does the I/O.
- **Audio backend** (:mod:`edgevoice.audio`): ``alsa`` (PyAudio by device name),
  ``file`` (WAV in and out on a simulated clock) and ``room`` (the file backend plus a
  simulated acoustic echo) all give the :class:`~audio.engine.AudioEngine` a capture and a
  playback device with ``read``/``write`` and a rate; nothing above the engine knows which.
- **Device** (:mod:`edgevoice.device`): the button and the LED (gpiozero, a mock pin
  factory in tests) and systemd (sd_notify, watchdog, reload answer). The service
  (:mod:`edgevoice.service`) joins them to the daemon as a state listener and a
  :class:`~lifecycle.DaemonObserver`; the daemon knows none of them.
- **Commands** (:mod:`edgevoice.commands`): what any thread may ask of the daemon (the
  button, the mute switch, signals, the service), each an order on the session thread's
  inbox. Hands-free and audible parts sit beside the daemon, not in it:
  :mod:`edgevoice.wake` (wake-word mode: the detector, the held question, the follow-up
  window), :mod:`edgevoice.mute` (the privacy mute, kept in the state directory),
  :mod:`edgevoice.volume` and :mod:`edgevoice.sounds` (observers that set the player's
  :mod:`~edgevoice.audio.mixer`).
- **Session host** (:class:`lifecycle.SessionHost`): all a :class:`~session.Session` may
  ask of the daemon (deliver an event, report a state, beat, activity).
"""

__version__ = "0.1.0"
