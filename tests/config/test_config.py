"""The config file: every error at once, did-you-mean, secrets from files, masked output."""

from __future__ import annotations

import textwrap

import pytest

from edgevoice import config as cfgmod
from edgevoice.config import ConfigError, parse
from tests.support import ROOT


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(textwrap.dedent(text), "test.conf")
    return [str(p) for p in info.value.problems]


def test_minimal_xuna_config_is_valid_and_defaults_apply():
    cfg = parse("[agent]\nprovider = xuna\n[xuna]\nagent_id = abc\n")
    assert cfg.xuna.agent_id == "abc"
    assert cfg.xuna.url == "wss://api.xuna.ai/v1/convai/conversation"
    assert cfg.xuna.api_key is None
    assert cfg.audio.backend == "alsa"
    assert cfg.session.reconnect_max_delay == 30.0


def test_inline_comments_as_in_the_documented_example():
    cfg = parse("[agent]\nprovider = voiceapi   # xuna | voiceapi\n"
                "[voiceapi]\napi_url = https://voice.example  ; base\napi_key = k3y-value\n")
    assert cfg.agent.provider == "voiceapi"
    assert cfg.voiceapi.api_url == "https://voice.example"


def test_every_problem_is_reported_at_once_with_section_key_and_fix():
    found = problems_of("""
        [agent]
        provider = xnua
        [xuna]
        agent_id = a1
        url = http://not-a-websocket
        [audio]
        backnd = file
        playback_buffer_s = lots
        mic_queue_ms = 5
        [sesion]
        connect_timeout = 3
        """)
    text = "\n".join(found)
    assert len(found) == 6, text
    assert "[agent] provider: 'xnua' is not one of: xuna, voiceapi, napster, navtalk, elevenlabs, openai, gemini; did you mean 'xuna'?" in found
    assert any(p.startswith("[xuna] url:") and "ws/wss URL" in p for p in found)
    assert any(p.startswith("[audio] backnd: unknown key; did you mean 'backend'?") for p in found)
    assert any(p.startswith("[audio] playback_buffer_s: 'lots' is not a number") for p in found)
    assert any(p.startswith("[audio] mic_queue_ms: 5 is out of range") for p in found)
    assert any(p.startswith("[sesion]: unknown section; did you mean 'session'?") for p in found)


def test_provider_specific_requirements():
    found = problems_of("[agent]\nprovider = voiceapi\n")
    assert any(p.startswith("[voiceapi] api_url: missing") for p in found)
    assert any(p.startswith("[voiceapi] api_key: missing") for p in found)
    found = problems_of("[agent]\nprovider = xuna\n")
    assert found == ["[xuna] agent_id: missing; the xuna provider needs the agent's id "
                     "(agent_id = ...)"]


def test_file_backend_requires_output_and_existing_input(tmp_path):
    found = problems_of(f"""
        [xuna]
        agent_id = a
        [audio]
        backend = file
        input_file = {tmp_path}/nope.wav
        """)
    assert any(p.startswith("[audio] input_file:") and "does not exist" in p for p in found)
    assert any(p.startswith("[audio] output_file: missing") for p in found)


def test_syntax_errors_name_the_line():
    found = problems_of("[xuna]\nagent_id = a\nthis line is wrong\n")
    assert "line 3" in found[0] and "key = value" in found[0]
    found = problems_of("[xuna]\nagent_id = a\nagent_id = b\n")
    assert found[0].startswith("[xuna] agent_id: set twice")


def test_secret_from_file_and_both_forms_rejected(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-from-file\n")
    cfg = parse(f"[xuna]\nagent_id = a\napi_key_file = {key_file}\n")
    assert cfg.xuna.api_key.reveal() == "s3cret-from-file"
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.xuna.api_key)
    found = problems_of(f"[xuna]\nagent_id = a\napi_key = x1234\napi_key_file = {key_file}\n")
    assert found == ["[xuna] api_key: set either api_key or api_key_file, not both"]
    found = problems_of(f"[xuna]\nagent_id = a\napi_key_file = {tmp_path}/missing\n")
    assert found[0].startswith("[xuna] api_key_file: cannot read")


def test_secret_from_systemd_credentials(tmp_path, monkeypatch):
    (tmp_path / "voiceapi_api_key").write_text("cred-secret-value")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = parse("[agent]\nprovider = voiceapi\n[voiceapi]\napi_url = https://v.example\n")
    assert cfg.voiceapi.api_key.reveal() == "cred-secret-value"


def test_render_masks_secrets():
    cfg = parse("[xuna]\nagent_id = a\napi_key = super-secret-key-123\n")
    text = cfgmod.render(cfg)
    assert "super-secret-key-123" not in text
    assert "api_key = *** " in text
    assert "agent_id = a" in text


def test_documented_example_config_is_valid_and_complete():
    example = ROOT / "config" / "edgevoice.conf"
    text = example.read_text()
    cfg = parse(text.replace("agent_id =", "agent_id = example", 1), str(example))
    assert cfg.agent.provider == "xuna"
    # every key of the schema is documented in the example (commented or not)
    for section, keys in cfgmod.documented_keys().items():
        assert f"[{section}]" in text, section
        for key in keys:
            assert f"\n{key} =" in text or f"\n# {key} =" in text, f"[{section}] {key}"


