"""The wording of every message a user or operator reads, pinned here (config, dialects) and
in tests/daemon/test_wording.py (tools, history, credentials).

Elsewhere the tests assert what a message is about (its section and key, the value at
fault, the retry class); here each kind of message is pinned once, word for word, so that a
change of wording is a deliberate edit of this file and a garbled message fails a test.
"""

from __future__ import annotations

import base64
import json
import logging

import pytest

from edgevoice.config import ConfigError, load, parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import Ended, HttpResponse, Malformed, Notice, SessionFailed


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


# -- config problems ------------------------------------------------------------------------
CONFIG_PROBLEMS = [
    ('choice_suggest', '[xuna]\nagent_id = a1\n[log]\nlevel = warnin\n',
     ["[log] level: 'warnin' is not one of: debug, info, warning, error; did you mean 'warning'?"]),
    ('choice_plain', '[xuna]\nagent_id = a1\n[log]\nlevel = zzzz\n',
     ["[log] level: 'zzzz' is not one of: debug, info, warning, error"]),
    ('bool', '[xuna]\nagent_id = a1\n[agent]\nhistory = maybe\n',
     ["[agent] history: 'maybe' is not yes/no (also on/off, true/false, 1/0)"]),
    ('json_invalid', '[xuna]\nagent_id = a1\n[napster]\nprovider_settings = {bad\n',
     ['[napster] provider_settings: not valid JSON (Expecting property name enclosed in double quotes at column 2); expected an object like {"key": "value"}']),
    ('json_not_object', '[xuna]\nagent_id = a1\n[napster]\nprovider_settings = [1]\n',
     ['[napster] provider_settings: expected a JSON object like {"key": "value"}']),
    ('client_id', '[xuna]\nagent_id = a1\n[napster]\nexternal_client_id = kitchen pi\n',
     ["[napster] external_client_id: 'kitchen pi' must be 1-32 characters of A-Z a-z 0-9 _ -"]),
    ('int', '[xuna]\nagent_id = a1\n[audio]\nmic_queue_ms = lots\n',
     ["[audio] mic_queue_ms: 'lots' is not a whole number"]),
    ('float', '[xuna]\nagent_id = a1\n[audio]\nplayback_buffer_s = lots\n',
     ["[audio] playback_buffer_s: 'lots' is not a number"]),
    ('range', '[xuna]\nagent_id = a1\n[audio]\nmic_queue_ms = 99\n',
     ['[audio] mic_queue_ms: 99 is out of range; expected 100 to 60000']),
    ('range_float', '[xuna]\nagent_id = a1\n[gpio]\nlong_press_s = 0.25\n',
     ['[gpio] long_press_s: 0.25 is out of range; expected 0.5 to 30']),
    ('ws_url', '[xuna]\nagent_id = a\nurl = http://h/x\n',
     ["[xuna] url: 'http://h/x' is not a ws/wss URL; expected e.g. wss://host/path"]),
    ('http_url', '[xuna]\nagent_id = a\napi_url = ftp://h\n',
     ["[xuna] api_url: 'ftp://h' is not a http/https URL; expected e.g. https://host/path"]),
    ('secret_both', '[xuna]\nagent_id = a\napi_key = k123\napi_key_file = /nonexistent/k\n',
     ['[xuna] api_key: set either api_key or api_key_file, not both']),
    ('secret_file_missing', '[xuna]\nagent_id = a\napi_key_file = /nonexistent/k\n',
     ['[xuna] api_key_file: cannot read /nonexistent/k: No such file or directory; check the path and its permissions']),
    ('secret_file_empty', '[xuna]\nagent_id = a\napi_key_file = {tmp}/empty.key\n',
     ['[xuna] api_key_file: {tmp}/empty.key is empty']),
    ('unknown_key', '[xuna]\nagent_id = a1\n[agent]\nprovidr = xuna\n',
     ["[agent] providr: unknown key; did you mean 'provider'? (known keys: barge_in, history, history_max_kb, history_replay_turns, mode, provider, state_dir, toggle_idle_s, tool_timeout)"]),
    ('unknown_key_plain', '[xuna]\nagent_id = a1\n[log]\nqqqq = 1\n',
     ['[log] qqqq: unknown key (known keys: level)']),
    ('unknown_section', '[xuna]\nagent_id = a1\n[sesion]\n',
     ["[sesion]: unknown section; did you mean 'session'? (known sections: agent, xuna, voiceapi, napster, navtalk, elevenlabs, openai, gemini, audio, sounds, barge_in, gpio, session, wake_word, metrics, log, tools)"]),
    ('unknown_section_plain', '[xuna]\nagent_id = a1\n[zzzz]\n',
     ['[zzzz]: unknown section (known sections: agent, xuna, voiceapi, napster, navtalk, elevenlabs, openai, gemini, audio, sounds, barge_in, gpio, session, wake_word, metrics, log, tools)']),
    ('xuna_agent', '[agent]\nprovider = xuna\n',
     ["[xuna] agent_id: missing; the xuna provider needs the agent's id (agent_id = ...)"]),
    ('voiceapi', '[agent]\nprovider = voiceapi\n',
     ['[voiceapi] api_url: missing; set the Voice API base URL (api_url = https://...)', '[voiceapi] api_key: missing; set api_key or api_key_file']),
    ('napster', '[agent]\nprovider = napster\n',
     ['[napster] api_key: missing; set api_key or api_key_file', '[napster] companion_id: missing; set companion_id (per-session) or agent_id (Omniagent)']),
    ('navtalk', '[agent]\nprovider = navtalk\n',
     ['[navtalk] license: missing; set license or license_file', '[navtalk] name: missing; set name (e.g. navtalk.Leo) or avatar_id']),
    ('rgb', '[xuna]\nagent_id = a1\n[gpio]\nenabled = yes\nled = rgb\n',
     ['[gpio] red_pin: led = rgb needs red_pin, green_pin and blue_pin']),
    ('pins', '[xuna]\nagent_id = a1\n[gpio]\nenabled = yes\nbutton_pin = 18\n',
     ['[gpio] button_pin: pins are used twice ([18, 18]); give the button, the mute switch and the LED their own pins']),
    ('tool_relative', '[xuna]\nagent_id = a1\n[tools]\nlights = bin/lights\n',
     ["[tools] lights: 'bin/lights' must be an absolute path to an executable"]),
    ('file_input', '[xuna]\nagent_id = a1\n[audio]\nbackend = file\ninput_file = /nonexistent/in.wav\noutput_file = /tmp/o.wav\n',
     ['[audio] input_file: /nonexistent/in.wav does not exist; give a WAV file or leave it empty for silence']),
    ('file_output_missing', '[xuna]\nagent_id = a1\n[audio]\nbackend = file\n',
     ['[audio] output_file: missing; the file backend writes what the speaker plays to this WAV']),
    ('file_output_folder', '[xuna]\nagent_id = a1\n[audio]\nbackend = file\noutput_file = /nonexistent/o.wav\n',
     ['[audio] output_file: its folder /nonexistent does not exist']),
    ('value_nul', '[xuna]\nagent_id = a1\nprompt = a\x00b\n',
     ['[xuna] prompt: contains a NUL character; retype the value']),
    ('value_long', '[xuna]\nagent_id = a1\nprompt = ' + 'p' * 65537 + '\n',
     ['[xuna] prompt: is 65537 characters long; at most 65536 are accepted']),
    ('json_constant', '[xuna]\nagent_id = a1\n[napster]\nprovider_settings = {"t": NaN}\n',
     ['[napster] provider_settings: not usable JSON (NaN is not a number JSON allows); expected an object like {"key": "value"}']),
    ('json_deep', '[xuna]\nagent_id = a1\n[napster]\nprovider_settings = ' + '[' * 5000 + '\n',
     ['[napster] provider_settings: not usable JSON (nested too deeply); expected an object like {"key": "value"}']),
    ('not_finite', '[xuna]\nagent_id = a1\n[audio]\nplayback_buffer_s = inf\n',
     ["[audio] playback_buffer_s: 'inf' is not a finite number; expected 1 to 600"]),
    ('number_cut', '[xuna]\nagent_id = a1\n[audio]\nmic_queue_ms = ' + '1234567890' * 6 + 'x\n',
     ["[audio] mic_queue_ms: '1234567890123456789012345678901234567890' is not a whole number"]),
    ('path_unusable', '[xuna]\nagent_id = a1\n[agent]\nstate_dir = /tmp/' + 'd' * 300 + '\n',
     ['[agent] state_dir: unusable path: File name too long']),
    ('secret_inline_bad', '[xuna]\nagent_id = a1\napi_key = k\x00y\n',
     ['[xuna] api_key: contains a NUL character or is too long']),
    ('secret_file_nul', '[xuna]\nagent_id = a1\napi_key_file = /tmp/k\x00y\n',
     ['[xuna] api_key_file: contains a NUL character']),
    ('secret_file_not_text', '[xuna]\nagent_id = a1\napi_key_file = {tmp}/binary.key\n',
     ['[xuna] api_key_file: {tmp}/binary.key is not UTF-8 text']),
    ('tool_nul', '[xuna]\nagent_id = a1\n[tools]\nlights = /bin/l\x00x\n',
     ['[tools] lights: contains a NUL character or is too long']),
    ('room_ir_missing', '[xuna]\nagent_id = a1\n[audio]\nbackend = room\noutput_file = /tmp/o.wav\n',
     ['[audio] room_ir: missing; the room backend needs the speaker-to-mic impulse response (a WAV)']),
    ('room_ir_absent', '[xuna]\nagent_id = a1\n[audio]\nbackend = room\nroom_ir = /nonexistent/ir.wav\nroom_user_ir = /nonexistent/u.wav\noutput_file = /tmp/o.wav\n',
     ['[audio] room_ir: /nonexistent/ir.wav does not exist; give a WAV impulse response',
      '[audio] room_user_ir: /nonexistent/u.wav does not exist; give a WAV impulse response']),
    ('dup_option', '[xuna]\nagent_id = a\nagent_id = b\n',
     ['[xuna] agent_id: set twice (line 3); keep one']),
    ('dup_section', '[xuna]\nagent_id = a\n[xuna]\n',
     ['[xuna]: section appears twice (line 3); merge them']),
    ('no_header', 'agent_id = a\n[xuna]\n',
     ['[?]: line 1: a key before any [section] header; start with e.g. [agent]']),
    ('parse_error', '[xuna]\nagent_id = a\nfoo\n\nbar\n',
     ["[?]: cannot parse line 3, line 5; expected 'key = value' (or a [section] or a # comment)"]),
]


@pytest.mark.parametrize("name, text, expected", CONFIG_PROBLEMS, ids=[c[0] for c in CONFIG_PROBLEMS])
def test_config_problem_wording(name, text, expected, tmp_path):
    (tmp_path / "empty.key").write_text("\n")
    (tmp_path / "binary.key").write_bytes(b"key\xff\n")
    with pytest.raises(ConfigError) as info:
        parse(text.replace("{tmp}", str(tmp_path)), "/etc/edgevoice/edgevoice.conf")
    assert [str(p) for p in info.value.problems] == [e.replace("{tmp}", str(tmp_path))
                                                      for e in expected]


def test_config_error_wording():
    with pytest.raises(ConfigError) as info:
        parse("[xuna]\nagent_id = a\n[log]\nlevel = loud\n[agent]\nhistory = maybe\n", "e.conf")
    assert str(info.value) == (
        "e.conf: 2 problem(s) in the config file:\n"
        "  [log] level: 'loud' is not one of: debug, info, warning, error\n"
        "  [agent] history: 'maybe' is not yes/no (also on/off, true/false, 1/0)")


def test_config_tool_and_file_wording(tmp_path):
    plain = tmp_path / "lights"
    plain.write_text("")
    with pytest.raises(ConfigError) as info:
        parse(f"[xuna]\nagent_id = a\n[tools]\nlights = {plain}\n")
    assert [str(p) for p in info.value.problems] == [
        f"[tools] lights: {plain} is not an executable file; check it exists and chmod +x it"]
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "none.conf"))
    assert str(info.value) == (f"{tmp_path}/none.conf: 1 problem(s) in the config file:\n"
                               f"  [file]: {tmp_path}/none.conf does not exist; copy the example "
                               "config/edgevoice.conf there")
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))
    assert info.value.path == str(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        f"[file]: cannot read {tmp_path}: not a regular file (a FIFO, device or folder)"]
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"[xuna]\nagent_id = \xff\n")
    with pytest.raises(ConfigError) as info:
        load(str(binary))
    assert str(info.value) == (f"{binary}: 1 problem(s) in the config file:\n"
                               f"  [file]: {binary} is not UTF-8 text")


# -- what each dialect makes of a server's message ----------------------------------------
CONFIGS = {
    "xuna": "[xuna]\nagent_id = a\napi_key = xk-1234\n",
    "voiceapi": "[agent]\nprovider = voiceapi\n[voiceapi]\napi_url = https://v.example\napi_key = vk-1234\n",
    "napster": "[agent]\nprovider = napster\n[napster]\napi_key = nk-1234\ncompanion_id = c\n",
    "napster-agent": "[agent]\nprovider = napster\n[napster]\napi_key = nk-1234\nagent_id = ag1\n",
    "navtalk": "[agent]\nprovider = navtalk\n[navtalk]\nlicense = lic-1234\nname = n\n",
}


def provider(dialect: str):
    return make_provider(parse(CONFIGS[dialect]), ["h1"] if dialect == "navtalk" else ())


def show(events) -> list[tuple]:
    out = []
    for e in events:
        if isinstance(e, Malformed):
            out.append(("Malformed", e.reason))
        elif isinstance(e, Notice):
            out.append((logging.getLevelName(e.level), e.text))
        elif isinstance(e, Ended):
            out.append(("Ended", e.outcome.retry, e.outcome.reason))
        else:
            out.append((type(e).__name__,))
    return out


DECODED = [
    ('xuna', b'\x00\x01',
     [('Malformed', 'unexpected binary message of 2 bytes')]),
    ('xuna', 'not json',
     [('Malformed', "not JSON (Expecting value: line 1 column 1 (char 0): 'not json'")]),
    ('xuna', '[1]',
     [('Malformed', 'JSON but not an object: list')]),
    ('xuna', '{"type":"audio"}',
     [('Malformed', 'audio message without an audio payload')]),
    ('xuna', '{"type":"audio","audio_event":{"audio_base_64":"!!"}}',
     [('Malformed', 'audio message with invalid base64')]),
    ('xuna', '{"type": "audio", "audio_event": {"audio_base_64": "AQID"}}',
     [('Malformed', 'audio chunk of odd length 3; last byte dropped'), ('AgentAudio',)]),
    ('xuna', '{"type":"ping"}',
     [('Malformed', 'ping without event_id')]),
    ('xuna', '{"type":"agent_response"}',
     [('Malformed', 'agent_response without agent_response_event.agent_response')]),
    ('xuna', '{"type":"user_transcript"}',
     [('Malformed', 'user_transcript without user_transcription_event.user_transcript')]),
    ('xuna', '{"type":"client_tool_call"}',
     [('Malformed', 'client_tool_call without tool_call_id or tool_name')]),
    ('xuna', '{"type":"error","message":"m"}',
     [('WARNING', "server reported an error: {'type': 'error', 'message': 'm'}")]),
    ('xuna', '{"type":"new_kind"}',
     [('DEBUG', "ignoring message type 'new_kind'")]),
    ('xuna', '{"type": "conversation_initiation_metadata", "conversation_initiation_metadata_event": {"agent_output_audio_format": "ulaw_8000"}}',
     [('ERROR', "agent output format 'ulaw_8000' is not PCM; set the agent's output format to pcm_16000 (assuming 16000 Hz PCM)"), ('Ready',)]),
    ('voiceapi', b'\x01\x02\x03',
     [('Malformed', 'audio frame of odd length 3; last byte dropped'), ('AgentAudio',)]),
    ('voiceapi', '{"type":"agent_ready"}',
     [('INFO', 'agent ready')]),
    ('voiceapi', '{"type":"session_ended","reason":"agent_disconnected"}',
     [('Ended', 'soon', 'session ended: the agent disconnected')]),
    ('voiceapi', '{"type":"session_ended","reason":"session_closed"}',
     [('Ended', 'soon', 'session ended: closed by the server')]),
    ('voiceapi', '{"type":"session_ended","reason":"room_closed"}',
     [('Ended', 'soon', 'session ended: room closed')]),
    ('voiceapi', '{"type":"session_ended","reason":"server_shutdown"}',
     [('Ended', 'soon', 'session ended: server shutting down')]),
    ('voiceapi', '{"type":"session_ended","reason":"odd"}',
     [('Ended', 'soon', 'session ended: odd')]),
    ('voiceapi', '{"type":"error","code":"AUTH_TIMEOUT","message":"late"}',
     [('WARNING', 'server error AUTH_TIMEOUT: late'), ('Ended', 'soon', 'server says the token came too late (AUTH_TIMEOUT)')]),
    ('voiceapi', '{"type":"error","code":"INVALID_AUTH","message":"m"}',
     [('WARNING', 'server error INVALID_AUTH: m'), ('Ended', 'auth', 'server rejected the token (INVALID_AUTH): check [voiceapi] api_key')]),
    ('voiceapi', '{"type":"error","code":"AUTH_FAILED","message":"m"}',
     [('WARNING', 'server error AUTH_FAILED: m'), ('Ended', 'auth', 'server rejected the token (AUTH_FAILED): check [voiceapi] api_key')]),
    ('voiceapi', '{"type":"error","code":"SESSION_SETUP_FAILED","message":"m"}',
     [('WARNING', 'server error SESSION_SETUP_FAILED: m'), ('Ended', 'later', 'server could not set up the session (SESSION_SETUP_FAILED)')]),
    ('voiceapi', '{"type":"error","code":"OTHER","message":"m"}',
     [('WARNING', 'server error OTHER: m')]),
    ('voiceapi', '{"type":"new_kind"}',
     [('DEBUG', "ignoring message type 'new_kind'")]),
    ('napster', '{"event":"audio_received","data":{}}',
     [('Malformed', 'audio_received without an audio payload')]),
    ('napster', '{"event":"message_received","data":null}',
     [('Malformed', 'message_received without data')]),
    ('napster', '{"event":"message_received","data":{"action":"failed","reason":"overload"}}',
     [('WARNING', 'agent response failed: overload')]),
    ('napster', '{"event":"function_implicitly_called","data":{}}',
     [('Malformed', 'function_implicitly_called without call_id or name')]),
    ('napster', '{"event":"talk_state_changed","data":{"state":"talking"}}',
     [('DEBUG', 'agent talk state talking')]),
    ('napster', '{"event":"avatar_state_changed","data":{"state":"idle"}}',
     [('DEBUG', 'agent state idle')]),
    ('napster', '{"event":"function_call_timeout","data":{"call_id":"c9"}}',
     [('WARNING', 'the agent stopped waiting for function call c9 (napster allows 10 s)')]),
    ('napster', '{"event":"error","data":{"message":"boom"}}',
     [('WARNING', 'server error: boom')]),
    ('napster', '{"event":"new_kind"}',
     [('DEBUG', "ignoring event 'new_kind'")]),
    ('navtalk', '{"x":1}',
     [('DEBUG', 'ignoring a message without a type')]),
    ('navtalk', '{"type":"realtime.response.audio.delta"}',
     [('Malformed', 'audio delta without an audio payload')]),
    ('navtalk', '{"type":"realtime.response.audio_transcript.done"}',
     [('Malformed', 'realtime.response.audio_transcript.done without content')]),
    ('navtalk', '{"type":"realtime.response.function_call_arguments.done","data":{}}',
     [('Malformed', 'function call without call_id or function_name')]),
    ('navtalk', '{"type":"conversation.connected.success","data":{"sessionId":"s1"}}',
     [('INFO', 'navtalk session s1')]),
    ('navtalk', '{"type":"conversation.connected.warning","data":{"message":"w"}}',
     [('WARNING', 'navtalk warning: w')]),
    ('navtalk', '{"type":"conversation.connected.insufficient_balance"}',
     [('Ended', 'long', 'NavTalk says the account balance is used up; recharge it')]),
    ('navtalk', '{"type":"conversation.connected.fail","data":{"message":"bad license"}}',
     [('Ended', 'auth', 'NavTalk refused the connection: bad license; check [navtalk] license')]),
    ('navtalk', '{"type":"conversation.connected.fail"}',
     [('Ended', 'soon', 'NavTalk refused the connection: no reason given')]),
    ('navtalk', '{"type":"conversation.connected.close"}',
     [('Ended', 'soon', 'NavTalk closed the session: normal closure')]),
    ('navtalk', '{"type":"conversation.connected.close","data":{"message":"bye"}}',
     [('Ended', 'soon', 'NavTalk closed the session: bye')]),
    ('navtalk', '{"type":"conversation.connected.gpu_full","data":{"message":"full"}}',
     [('Ended', 'later', 'NavTalk is busy (gpu_full): full')]),
    ('navtalk', '{"type":"conversation.connected.other","data":{"message":"o"}}',
     [('WARNING', 'navtalk other: o')]),
    ('navtalk', '{"type":"realtime.session.created"}',
     [('Reply',), ('DEBUG', 'session created; sent 1 history turn(s)')]),
    ('navtalk', '{"type":"realtime.new"}',
     [('DEBUG', "ignoring event 'realtime.new'")]),
]


@pytest.mark.parametrize("dialect, message, expected", DECODED)
def test_decoded_message_wording(dialect, message, expected):
    assert show(provider(dialect).decode(message)) == expected


OPENING_FAILURES = [
    ('xuna', HttpResponse(status=401, body=None, headers={}),
     ('auth', None, 'signed URL request rejected with HTTP 401: the [xuna] api_key is wrong or has no access to this agent')),
    ('xuna', HttpResponse(status=429, body=None, headers={'Retry-After': '3'}),
     ('later', 3.0, 'signed URL request: rate limited (HTTP 429)')),
    ('xuna', HttpResponse(status=500, body=None, headers={}),
     ('soon', None, 'signed URL request failed with HTTP 500')),
    ('xuna', HttpResponse(status=200, body={}, headers={}),
     ('soon', None, 'signed URL response has no usable signed_url')),
    ('voiceapi', None,
     ('soon', None, 'session token request failed with HTTP 0')),
    ('voiceapi', HttpResponse(status=403, body=None, headers={}),
     ('auth', None, 'session token request rejected with HTTP 403: the key is valid but this device is disabled')),
    ('voiceapi', HttpResponse(status=200, body={}, headers={}),
     ('soon', None, 'token response has no token')),
    ('voiceapi', HttpResponse(status=200, body={'token': 't'}, headers={}),
     ('soon', None, 'token response has no usable ws_url')),
    ('napster', HttpResponse(status=409, body=None, headers={}),
     ('later', 30.0, 'session connection request: too many concurrent sessions for this key (HTTP 409); another device or a stale session holds them')),
    ('napster-agent', HttpResponse(status=404, body=None, headers={}),
     ('soon', None, "Omniagent connection request: no agent 'ag1' (HTTP 404); check [napster] agent_id")),
    ('napster', HttpResponse(status=200, body={}, headers={}),
     ('soon', None, 'session connection request: response has no token')),
    ('napster', HttpResponse(status=200, body={'token': '!!!'}, headers={}),
     ('soon', None, 'napster connection token is not base64 JSON')),
    ('napster', HttpResponse(status=200, body={'token': 'eyJhIjoxfQ=='}, headers={}),
     ('soon', None, 'session connection request: token has no usable url')),
    ('napster', HttpResponse(status=200, body={'token': 'eyJ1cmwiOiJ3c3M6Ly9oIn0='}, headers={}),
     ('soon', None, 'session connection request: token has neither authToken nor token')),
    ('napster-agent', HttpResponse(status=401, body=None, headers={}),
     ('auth', None, 'Omniagent connection request rejected with HTTP 401: the [napster] api_key is wrong')),
]


@pytest.mark.parametrize("dialect, response, expected", OPENING_FAILURES)
def test_opening_failure_wording(dialect, response, expected):
    with pytest.raises(SessionFailed) as info:
        provider(dialect).connect_plan(response)
    outcome = info.value.outcome
    assert (outcome.retry, outcome.retry_after, outcome.reason) == expected


@pytest.mark.parametrize("code, expected", [
    (4001, "closed 4001: authentication timeout"), (4002, "closed 4002: token required"),
    (4003, "closed 4003: authentication failed; check [voiceapi] api_key"),
    (4500, "closed 4500: session setup failed"), (1000, "server closed the session normally"),
    (1006, "server closed the connection (code 1006, why)")])
def test_close_wording(code, expected):
    assert provider("voiceapi").close_outcome(code, "why").reason == expected


def test_base_close_and_handshake_wording():
    p = provider("xuna")
    assert p.close_outcome(1006, "").reason == "server closed the connection (code 1006)"
    assert p.close_outcome(4000, "bye").reason == "server closed the connection (code 4000, bye)"
    assert p.auth_outcome(401).reason == ("WebSocket handshake refused (HTTP 401): check the "
                                          "agent id and API key")
    assert p.auth_outcome(500).reason == "WebSocket handshake refused (HTTP 500)"


def test_long_values_are_cut_in_messages():
    [notice] = provider("xuna").decode(json.dumps({"type": "t" * 100}))
    assert notice.text == "ignoring message type '" + "t" * 40 + "'"
    meta = {"type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {"agent_output_audio_format": "f" * 100}}
    assert provider("xuna").decode(json.dumps(meta))[0].text.startswith(
        "agent output format '" + "f" * 30 + "' is not PCM")
    [notice] = provider("xuna").decode(json.dumps({"type": "error", "m": "e" * 400}))
    assert notice.text == "server reported an error: " + str({"type": "error", "m": "e" * 400})[:200]


def test_garbage_is_quoted_up_to_60_characters():
    [event] = provider("xuna").decode("g" * 100)
    assert event.reason == ("not JSON (Expecting value: line 1 column 1 (char 0): '"
                            + "g" * 60 + "'")


def test_voiceapi_wording_of_edge_cases():
    p = provider("voiceapi")
    [ended] = p.decode(json.dumps({"type": "session_ended", "reason": "r" * 100}))
    assert ended.outcome.reason == "session ended: " + "r" * 60
    [notice] = p.decode(json.dumps({"type": "error", "code": "C" * 100, "message": "m" * 300}))
    assert notice.text == "server error " + "C" * 40 + ": " + "m" * 200
    [notice] = p.decode(json.dumps({"type": "error", "code": "OTHER"}))
    assert notice.text == "server error OTHER: "
    [notice] = p.decode(json.dumps({"type": "t" * 100}))
    assert notice.text == "ignoring message type '" + "t" * 40 + "'"
    with pytest.raises(SessionFailed) as info:
        p.connect_plan(HttpResponse(401, None))
    assert info.value.outcome.reason == ("session token request rejected with HTTP 401: the "
                                         "[voiceapi] api_key is wrong")


def test_navtalk_wording_of_edge_cases():
    p = provider("navtalk")
    [event] = p.decode(json.dumps({
        "type": "realtime.conversation.item.input_audio_transcription.completed"}))
    assert event.reason == ("realtime.conversation.item.input_audio_transcription.completed "
                            "without content")
    [notice] = p.decode(json.dumps({"type": "realtime." + "x" * 100}))
    assert notice.text == "ignoring event '" + ("realtime." + "x" * 100)[:60] + "'"
    [notice] = p.decode(json.dumps({"type": "conversation.connected.warning", "message": "w" * 300}))
    assert notice.text == "navtalk warning: " + "w" * 200
    assert p.connect_plan(None).headers == {}


def test_napster_wording_of_edge_cases():
    p = provider("napster")
    with pytest.raises(SessionFailed) as info:
        p.connect_plan(None)
    assert info.value.outcome.reason == "session connection request failed with HTTP 0"
    tok = base64.b64encode(json.dumps({"url": "wss://h", "authToken": "A"}).encode()).decode()
    assert p.connect_plan(HttpResponse(200, {"token": tok})).note == "napster connection (no id)"
    agent = provider("napster-agent")
    plan = agent.connect_plan(HttpResponse(200, {"token": tok, "connection": {"id": "c7"}}))
    assert plan.note == "napster connection c7 to Omniagent ag1"
    cases = [
        ({"event": "talk_state_changed", "data": {"state": "s" * 50}}, "agent talk state " + "s" * 20),
        ({"event": "avatar_state_changed", "data": {"state": "s" * 50}}, "agent state " + "s" * 20),
        ({"event": "function_call_timeout", "data": {"name": "fname"}},
         "the agent stopped waiting for function call fname (napster allows 10 s)"),
        ({"event": "function_call_timeout", "data": {"call_id": "c" * 100}},
         "the agent stopped waiting for function call " + "c" * 64 + " (napster allows 10 s)"),
        ({"event": "error", "data": {"message": "e" * 300}}, "server error: " + "e" * 200),
        ({"event": "e" * 100}, "ignoring event '" + "e" * 40 + "'"),
        ({"event": "message_received", "data": {"action": "failed", "reason": "r" * 200}},
         "agent response failed: " + "r" * 120),
    ]
    for message, text in cases:
        [notice] = p.decode(json.dumps(message))
        assert notice.text == text
