"""The local agent's elevenlabs dialect: what it adds to xuna (client tool calls,
contextual updates, user_audio_chunk, other output rates) and what it shares (signed URLs,
pings, interruptions with late audio), driven only by plain clients
(docs/protocols/elevenlabs.md); nothing here imports the daemon."""

from __future__ import annotations

import base64
import json

import requests
import websocket

from tests.support.localagent import xuna_send_audio
from tests.support.localagent import (KEY, TIMEOUT, recv_json, recv_until, recv_until_closed,
                                      talk_over_the_answer)


def test_signed_url_tool_call_contextual_update_and_pings(make_agent, question):
    agent = make_agent("elevenlabs", private=True, output_rate=44100, ping_interval=0.2,
                       function_call={"name": "get_temperature", "arguments": '{"room": "hall"}'})
    answer = requests.get(f"{agent.http_base}/v1/convai/conversation/get-signed-url",
                          params={"agent_id": "local-agent"}, headers={"xi-api-key": KEY},
                          timeout=TIMEOUT)
    ws = websocket.create_connection(answer.json()["signed_url"], timeout=TIMEOUT)
    ws.send(json.dumps({"type": "conversation_initiation_client_data"}))
    ws.send(json.dumps({"type": "contextual_update", "text": "The device is in the hall."}))
    metadata, _ = recv_until(ws, "conversation_initiation_metadata")
    event = metadata["conversation_initiation_metadata_event"]
    assert event["agent_output_audio_format"] == "pcm_44100"
    ping, _ = recv_until(ws, "ping", skip_pings=False)
    ws.send(json.dumps({"type": "pong", "event_id": ping["ping_event"]["event_id"]}))
    xuna_send_audio(ws, question, legacy_form=True)  # {"user_audio_chunk": ...}
    call, before = recv_until(ws, "client_tool_call")
    assert "user_transcript" in [m["type"] for m in before]
    call = call["client_tool_call"]
    assert (call["tool_name"], call["parameters"]) == ("get_temperature", {"room": "hall"})
    ws.send(json.dumps({"type": "client_tool_result", "tool_call_id": "someone_else",
                        "result": "?", "is_error": False}))
    ws.send(json.dumps({"type": "client_tool_result", "tool_call_id": call["tool_call_id"],
                        "result": "19 C", "is_error": False}))
    response, _ = recv_until(ws, "agent_response")
    assert response["agent_response_event"]["agent_response"].startswith(
        "get_temperature returned 19 C.")
    reply = agent.wait_for("reply_end")[0]
    audio = b""
    while len(audio) < reply.data["seconds"] * 44100 * 2 - 2:
        chunk, _ = recv_until(ws, "audio")
        audio += base64.b64decode(chunk["audio_event"]["audio_base_64"])
    assert abs(len(audio) / 88200 - reply.data["seconds"]) < 0.01
    ws.close()
    assert agent.wait_for("ws_open")[0].data["auth"] == "signed"
    assert agent.wait_for("contextual_update")[0].data["text"] == "The device is in the hall."
    assert agent.wait_for("pong_ok")
    assert agent.wait_for("function_output")[0].data["output"] == "19 C"
    assert agent.count("function_output_unexpected") == 1


def test_talking_over_the_answer_interrupts_then_late_audio(make_agent, question):
    agent = make_agent("elevenlabs", ping_interval=0, late_audio_after_interrupt=True)
    ws = websocket.create_connection(
        f"{agent.ws_base}/v1/convai/conversation?agent_id=local-agent", timeout=TIMEOUT)
    talk_over_the_answer(ws, xuna_send_audio, question, "audio")
    interruption, _ = recv_until(ws, "interruption")
    assert interruption["interruption_event"]["event_id"] == 1
    late = [recv_json(ws) for _ in range(3)]
    assert [m["audio_event"]["event_id"] for m in late] == [1, 1, 1]  # to be dropped
    assert agent.wait_for("late_audio_sent")[0].data["chunks"] == 3
    ws.close()


def test_closing_errors_a_refused_override_and_no_input(make_agent):
    agent = make_agent("elevenlabs", elevenlabs_refuse_overrides=True,
                       elevenlabs_receive_timeout_s=0.5)
    url = f"{agent.ws_base}/v1/convai/conversation?agent_id=local-agent"
    ws = websocket.create_connection(url, timeout=TIMEOUT)
    ws.send(json.dumps({"type": "conversation_initiation_client_data",
                        "conversation_config_override": {"agent": {"language": "xx"}}}))
    received, code, _ = recv_until_closed(ws)
    error = [m for m in received if m.get("type") == "error"][0]["error_event"]
    assert (code, error["error_type"]) == (1008, "override_error")
    ws = websocket.create_connection(url, timeout=TIMEOUT)  # then silence
    received, code, reason = recv_until_closed(ws)
    error = [m for m in received if m.get("type") == "error"][0]["error_event"]
    assert (code, error["error_type"]) == (1002, "transport_receive_timeout")
    assert "No user input" in reason
