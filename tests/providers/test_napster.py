"""The napster dialect against the seed's own examples (000, 001) and the tolerant forms."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from edgevoice.config import parse
from edgevoice.providers import make_provider
from edgevoice.providers.base import (AgentAudio, HttpResponse, Interruption, Malformed, Notice,
                                      Ready, SessionFailed, ToolCall, Transcript)
from edgevoice.providers.napster import agent_body, session_body
from tests.support import ROOT

SEED_SESSION = """
[agent]
provider = napster
[napster]
api_key = nk_live_secret
companion_id = comp_abc123
voice_id = alloy
functions = fn_tool1, fn_tool2
faq_collections = faqc_01
knowledge_base_id = col_8f2a3b
"""


def provider(text: str = SEED_SESSION):
    return make_provider(parse(text))


def token_of(payload: dict) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


def test_per_session_request_is_the_seed_example():
    req = provider().bootstrap_request()
    assert (req.method, req.url) == ("POST",
                                     "https://companion-api.napster.com/public/ws-connections")
    assert req.headers["X-Api-Key"] == "nk_live_secret"
    assert req.json == {"companionId": "comp_abc123",
                        "providerConfig": {"voiceId": "alloy", "settings": {}},
                        "functions": ["fn_tool1", "fn_tool2"], "faqCollections": ["faqc_01"],
                        "knowledgeBaseId": "col_8f2a3b"}


def test_every_per_session_field():
    cfg = parse(SEED_SESSION + 'provider_settings = {"temperature": 0.7}\nlanguage = English\n'
                "tags = kiosk, lobby\nexternal_client_id = user_12345\n"
                'external_client_profile = {"name": "Lobby"}\ndisable_idle_timeout = yes\n')
    body = session_body(cfg.napster)
    assert body["providerConfig"] == {"voiceId": "alloy", "settings": {"temperature": 0.7}}
    assert body["language"] == "English" and body["tags"] == ["kiosk", "lobby"]
    assert body["externalClientId"] == "user_12345"
    assert body["externalClientProfile"] == {"name": "Lobby"}
    assert body["disableIdleTimeout"] is True


def test_omniagent_connection_sends_only_session_fields():
    p = provider(SEED_SESSION + "agent_id = agent_abc123\nexternal_client_id = user_12345\n"
                 "tags = lobby\n")
    req = p.bootstrap_request()
    assert req.url == ("https://companion-api.napster.com/public/agents/agent_abc123/"
                       "connections")
    assert req.json == {"channelType": "websocket", "externalClientId": "user_12345",
                        "tags": ["lobby"]}


def test_token_with_auth_token_is_a_bearer_header_and_connection_id_is_logged():
    token = token_of({"url": "wss://ws.napster.example/session", "authToken": "eyJauth"})
    plan = provider().connect_plan(HttpResponse(200, {"token": token,
                                                      "connection": {"id": "conn_abc123"}}))
    assert plan.url == "wss://ws.napster.example/session"
    assert plan.headers == {"Authorization": "Bearer eyJauth"}
    assert "conn_abc123" in plan.note
    assert {"eyJauth", token} <= set(plan.secrets)
    assert plan.stream_on_open


def test_token_with_the_token_in_the_url_adds_nothing_and_https_becomes_wss():
    token = token_of({"url": "https://ws.napster.example/session?token=T0K", "token": "T0K"})
    plan = provider().connect_plan(HttpResponse(200, {"token": token, "connection": {"id": "c"}}))
    assert plan.url == "wss://ws.napster.example/session?token=T0K"
    assert plan.headers == {}
    token = token_of({"url": "http://127.0.0.1:9/ws", "token": "T1"})
    plan = provider().connect_plan(HttpResponse(200, {"token": token, "connection": {"id": "c"}}))
    assert plan.url == "ws://127.0.0.1:9/ws?token=T1"


@pytest.mark.parametrize("status,retry,words", [(401, "auth", "api_key"), (409, "later", "409"),
                                                (429, "later", "429"), (500, "soon", "500")])
def test_connection_request_failures(status, retry, words):
    with pytest.raises(SessionFailed) as info:
        provider().connect_plan(HttpResponse(status, None, {"Retry-After": "5"}))
    assert info.value.outcome.retry == retry and words in info.value.outcome.reason
    if status == 429:
        assert info.value.outcome.retry_after == 5.0


@pytest.mark.parametrize("body", [{}, {"token": "%%%"}, {"token": token_of({"url": "wss://x"})},
                                  {"token": token_of({"authToken": "a"})}])
def test_unusable_tokens(body):
    with pytest.raises(SessionFailed):
        provider().connect_plan(HttpResponse(200, body))


def test_audio_send_forms():
    frame = bytes(range(64)) * 10
    b64 = base64.b64encode(frame).decode()
    assert json.loads(provider().encode_audio(frame)[0]) == {"type": "send_audio",
                                                             "data": {"data": b64}}
    p = provider(SEED_SESSION + "send_audio_key = audio\n")
    assert json.loads(p.encode_audio(frame)[0]) == {"type": "send_audio", "data": {"audio": b64}}


@pytest.mark.parametrize("message", [
    {"event": "audio_received", "data": {"data": "AQACAA=="}},
    {"type": "audio_received", "data": {"data": "AQACAA=="}},
    {"event": "audio_received", "data": {"audio": "AQACAA=="}},
])
def test_audio_received_in_every_form(message):
    assert provider().decode(json.dumps(message)) == [AgentAudio(b"\x01\x00\x02\x00")]


def test_message_received_flat_or_nested_and_the_session_marker():
    p = provider()
    assert p.decode('{"type":"message_received","data":{"type":"session","id":"s1"}}') == []
    flat = {"type": "message_received", "data": {"role": "user", "action": "completed",
                                                 "content": "Where is the exit?"}}
    nested = {"event": "message_received", "data": {"message": {
        "role": "assistant", "action": "completed", "content": "Down the hall."}}}
    assert p.decode(json.dumps(flat)) == [Transcript("user", "Where is the exit?")]
    assert p.decode(json.dumps(nested)) == [Transcript("agent", "Down the hall.")]
    delta = {"type": "message_received", "data": {"role": "assistant", "action": "delta",
                                                  "content": "Down"}}
    assert p.decode(json.dumps(delta)) == []


def test_barge_in_events_interrupt():
    p = provider()
    assert p.decode('{"type":"speech_started"}') == [Interruption(None)]
    cancelled = {"type": "message_received", "data": {"role": "assistant", "action": "cancelled",
                                                      "reason": "turn_detected",
                                                      "response_id": "r7"}}
    assert p.decode(json.dumps(cancelled)) == [Interruption("r7")]


def test_function_calls_are_deduplicated_and_answered():
    p = provider()
    msg = {"event": "function_implicitly_called",
           "data": {"call_id": "call_1", "name": "get_temperature",
                    "arguments": '{"room": "kitchen"}'}}
    (call,) = p.decode(json.dumps(msg))
    assert call == ToolCall("call_1", "get_temperature", {"room": "kitchen"})
    assert p.decode(json.dumps(msg)) == []  # repeated by the server: answered once
    (out,) = p.tool_result(call, "21.5 C", False)
    assert json.loads(out) == {"type": "send_function_output",
                               "data": {"call_id": "call_1", "output": "21.5 C"}}


def test_state_timeout_and_error_events():
    p = provider()
    assert isinstance(p.decode('{"event":"avatar_state_changed","data":{"state":"ready"}}')[0],
                      Ready)
    assert p.decode('{"event":"talk_state_changed","data":{"state":"started"}}')[0].level == 10
    (timeout,) = p.decode('{"type":"function_call_timeout","data":{"call_id":"call_9"}}')
    assert isinstance(timeout, Notice) and "call_9" in timeout.text
    (error,) = p.decode('{"type":"error","data":{"message":"rate limited"}}')
    assert isinstance(error, Notice) and "rate limited" in error.text


@pytest.mark.parametrize("message", ["nope", '{"type":"audio_received"}',
                                     '{"type":"audio_received","data":{"data":"@@"}}',
                                     '{"type":"message_received"}',
                                     '{"type":"function_implicitly_called","data":{}}'])
def test_malformed(message):
    events = provider().decode(message)
    assert events and all(isinstance(e, Malformed) for e in events)


SEED_MIGRATION_CONFIG = """
[agent]
provider = napster
[napster]
api_key = nk_live_secret
companion_id = comp_abc123
language = English
functions = fn_order_status, fn_returns
faq_collections = faq_support
knowledge_base_id = kb_product_docs
voice_id = alloy
provider_settings = {"temperature": 0.7}
"""


def test_agent_body_follows_the_seed_field_mapping():
    """The seed's "Before" per-session request becomes its "After" agent, field by field."""
    body = agent_body(parse(SEED_MIGRATION_CONFIG).napster, "Support Agent")
    assert body == {"companionId": "comp_abc123", "name": "Support Agent", "voiceId": "alloy",
                    "language": "English", "functions": ["fn_order_status", "fn_returns"],
                    "faqCollections": ["faq_support"], "knowledgeBaseId": "kb_product_docs",
                    "providerSettings": {"temperature": 0.7}}


def test_create_agent_dry_run_prints_the_mapping_and_no_secret(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text(SEED_MIGRATION_CONFIG)
    result = subprocess.run([sys.executable, "-m", "edgevoice", "napster", "create-agent",
                             "--config", str(conf), "--name", "Support Agent", "--dry-run"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    first, _, rest = result.stdout.partition("\n")
    assert first == "POST https://companion-api.napster.com/public/agents"
    body = json.loads(rest.split("\n", 1)[1])
    per_session = session_body(parse(SEED_MIGRATION_CONFIG).napster)
    # the seed's table, row by row
    assert body["companionId"] == per_session["companionId"]
    assert body["voiceId"] == per_session["providerConfig"]["voiceId"]
    assert body["providerSettings"] == per_session["providerConfig"]["settings"]
    for key in ("language", "functions", "faqCollections", "knowledgeBaseId"):
        assert body[key] == per_session[key]
    assert "providerConfig" not in body
    assert "nk_live_secret" not in result.stdout + result.stderr


def test_create_and_update_agent_against_the_local_agent(make_agent, tmp_path, capsys):
    from edgevoice import napster_admin

    agent = make_agent("napster")
    base = f"[agent]\nprovider = napster\n[napster]\napi_url = {agent.http_base}\n" \
           f"api_key = {agent.options.api_key}\n"
    cfg = parse(base + SEED_MIGRATION_CONFIG.split("[napster]\n", 1)[1]
                .replace("api_key = nk_live_secret\n", ""))
    assert napster_admin.create_agent(cfg, "Support Agent", dry_run=False) == 0
    created = agent.wait_for("http_agent_create", timeout=5)[0]
    assert created.data["body"] == agent_body(cfg.napster, "Support Agent")
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.strip().startswith("agent_id = "))
    agent_id = line.split("=", 1)[1].strip()
    assert agent_id == created.data["agent_id"]
    cfg2 = parse(base + f"agent_id = {agent_id}\ncompanion_id = comp_abc123\nvoice_id = nova\n")
    assert napster_admin.update_agent(cfg2, None, dry_run=False) == 0
    patched = agent.wait_for("http_agent_update", timeout=5)[0]
    assert patched.data["agent_id"] == agent_id and patched.data["body"] == {"voiceId": "nova"}
    assert agent.options.api_key not in capsys.readouterr().out
