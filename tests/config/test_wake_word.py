"""[wake_word] and ``[agent] mode = wake-word``: what is accepted, and a bad line names its
section, key and the fix."""

from __future__ import annotations

import pytest

from edgevoice.config import parse, render
from tests.support.config import XUNA, problems

WAKE = XUNA + "[agent]\nmode = wake-word\n"


def wake(**keys: str) -> str:
    return WAKE + "[wake_word]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


def only_problem(text: str) -> str:
    [problem] = problems(text)
    return str(problem)


def test_defaults_listen_for_okay_nabu_with_the_agent_of_the_agent_section():
    cfg = parse(WAKE)
    settings = cfg.section("wake_word")
    assert cfg.agent.mode == "wake-word"
    assert settings.models == ("okay_nabu",) and settings.agents == ()
    assert settings.agent_for("okay_nabu", cfg.agent.provider) == "xuna"
    assert (settings.follow_up_s, settings.quiet_s, settings.cutoff,
            settings.refractory_s) == (5.0, 15.0, 0.0, 2.0)


def test_several_models_each_with_its_agent_and_how_edgevoice_config_shows_them():
    text = wake(models="okay_nabu, alexa, hey_mycroft", agents="alexa : gemini, okay_nabu:xuna")
    text += "[gemini]\napi_key = g-secret\n"
    cfg = parse(text)
    settings = cfg.section("wake_word")
    assert settings.agents == (("alexa", "gemini"), ("okay_nabu", "xuna"))
    assert settings.agent_for("alexa", "xuna") == "gemini"
    assert settings.agent_for("hey_mycroft", "xuna") == "xuna"
    assert "agents = alexa: gemini, okay_nabu: xuna\n" in render(cfg)


def test_a_model_path_to_an_existing_json_is_taken(tmp_path):
    model = tmp_path / "hey_pi.json"
    model.write_text("{}")
    assert parse(wake(models=f"okay_nabu, {model}")).section("wake_word").models[1] == \
        str(model)


@pytest.mark.parametrize("keys, says", [
    ({"models": "alexxa"}, ["[wake_word] models", "'alexxa' is not a bundled model",
                            "okay_nabu, hey_jarvis, hey_mycroft, alexa", "did you mean 'alexa'"]),
    ({"models": ""}, ["[wake_word] models", "no model given; e.g. okay_nabu"]),
    ({"models": "alexa, alexa"}, ["[wake_word] models", "twice"]),
    ({"models": "/nowhere/hey_pi.json"}, ["[wake_word] models", "/nowhere/hey_pi.json does "
                                          "not exist", "bundled name such as okay_nabu"]),
    ({"agents": "okay_nabu xuna"}, ["[wake_word] agents", "is not 'model: provider'",
                                    "e.g. okay_nabu: xuna, alexa: gemini"]),
    ({"agents": "okay_nabu: xuan"}, ["[wake_word] agents", "'xuan'", "is not a provider",
                                     "did you mean 'xuna'"]),
    ({"agents": "okay_nabu: xuna, okay_nabu: gemini"}, ["[wake_word] agents", "two agents"]),
    ({"agents": "alexa: xuna"}, ["[wake_word] agents", "'alexa' is not in models "
                                 "(okay_nabu)", "add it there"]),
    ({"follow_up_s": "-1"}, ["[wake_word] follow_up_s", "expected 0 to 120"]),
    ({"quiet_s": "1"}, ["[wake_word] quiet_s", "expected 2 to 3600"]),
    ({"cutoff": "1.5"}, ["[wake_word] cutoff", "expected 0 to 0.99"]),
    ({"refractory_s": "soon"}, ["[wake_word] refractory_s", "is not a number"]),
    ({"wake_word": "okay_nabu"}, ["[wake_word] wake_word", "unknown key", "known keys"]),
])
def test_a_bad_value_names_the_section_the_key_and_the_fix(keys, says):
    message = only_problem(wake(**keys))
    for words in says:
        assert words in message, message


def test_an_agent_of_another_microphone_rate_is_refused_naming_both_rates():
    text = wake(models="okay_nabu, alexa", agents="alexa: openai") + "[openai]\napi_key = k\n"
    message = only_problem(text)
    assert "[wake_word] agents" in message
    assert "openai takes the microphone at 24000 Hz" in message and "xuna at 16000 Hz" in message


def test_the_section_of_a_wake_words_agent_must_be_complete():
    """alexa talks to gemini: [gemini] is checked as if it were [agent] provider."""
    [problem] = problems(wake(models="okay_nabu, alexa", agents="alexa: gemini"))
    assert (problem.section, problem.key) == ("gemini", "api_key")


def test_other_modes_do_not_check_the_agents_of_wake_words():
    text = XUNA + "[wake_word]\nmodels = okay_nabu, alexa\nagents = alexa: gemini\n"
    assert parse(text).agent.mode == "always-on"


def test_mode_names_wake_word_among_its_choices():
    message = only_problem(XUNA + "[agent]\nmode = wake\n")
    assert "[agent] mode" in message and "wake-word" in message


def test_the_engine_decides_which_names_and_model_files_are_models(tmp_path):
    assert parse(wake(engine="micro")).section("wake_word").engine == "micro"
    said = only_problem(wake(models="hey_rhasspy"))  # openWakeWord's, not microWakeWord's
    assert "[wake_word] models" in said and "engine micro" in said and "okay_nabu" in said
    model = tmp_path / "custom.tflite"
    model.write_bytes(b"TFL3")
    said = only_problem(wake(models=str(model)))  # micro loads a .json beside its .tflite
    assert "[wake_word] models" in said and ".json" in said
    said = only_problem(wake(engine="open", models=str(tmp_path / "missing.tflite")))
    if "[wake_word] engine" in said:  # pyopen-wakeword is an extra: say how to get it
        assert "pyopen-wakeword" in said and "engine = micro" in said
    else:
        assert "[wake_word] models" in said and "does not exist" in said
    said = only_problem(wake(engine="tiny"))
    assert "[wake_word] engine" in said and "micro" in said and "open" in said


def test_engine_open_takes_its_own_bundled_names_when_installed():
    pytest.importorskip("pyopen_wakeword")
    cfg = parse(wake(engine="open", models="hey_rhasspy, okay_nabu"))
    assert cfg.section("wake_word").models == ("hey_rhasspy", "okay_nabu")
