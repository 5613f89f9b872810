"""Config rules, one by one: every range's boundaries, every value kind, every rule that
combines keys, sections in any order (secrets, loading, printing and the docs:
tests/config/test_files.py).

Problems are asserted by (section, key), not by their wording; one test per kind of
message checks that the message names what the user must fix.
"""

from __future__ import annotations

import math

import pytest

from edgevoice.config import ConfigError, parse, sections
from edgevoice.config.types import Number, keys, value_type
from tests.support.config import XUNA, problems, where, with_key


def ranged_fields():
    for section, cls in sections().items():
        for fld in keys(cls):
            if isinstance(value_type(fld), Number):
                yield pytest.param(section, fld, id=f"{section}.{fld.name}")


# -- numbers --------------------------------------------------------------------------------
@pytest.mark.parametrize("section, fld", list(ranged_fields()))
def test_every_range_accepts_its_bounds_and_refuses_one_step_outside(section, fld):
    low, high = value_type(fld).minimum, value_type(fld).maximum
    assert low is not None and high is not None and low < high
    if fld.type == "int":
        below, above = str(int(low) - 1), str(int(high) + 1)
        inside = (str(int(low)), str(int(high)))
    else:
        below, above = repr(math.nextafter(low, -math.inf)), repr(math.nextafter(high, math.inf))
        inside = (repr(float(low)), repr(float(high)))
    for raw in inside:
        cfg = parse(with_key(section, fld.name, raw))
        assert getattr(getattr(cfg, section), fld.name) == float(raw)
    for raw in (below, above):
        assert where(with_key(section, fld.name, raw)) == {(section, fld.name)}, raw


def test_a_range_problem_names_the_allowed_range():
    [problem] = problems(with_key("audio", "mic_queue_ms", "99"))
    assert "99" in problem.message and "100" in problem.message and "60000" in problem.message


def test_numbers_of_the_wrong_kind_are_refused():
    assert where(with_key("audio", "mic_queue_ms", "1000.5")) == {("audio", "mic_queue_ms")}
    assert where(with_key("audio", "mic_queue_ms", "lots")) == {("audio", "mic_queue_ms")}
    assert where(with_key("audio", "playback_buffer_s", "ten")) == {("audio", "playback_buffer_s")}
    [int_problem] = problems(with_key("audio", "mic_queue_ms", "x"))
    [float_problem] = problems(with_key("audio", "playback_buffer_s", "x"))
    assert "whole number" in int_problem.message and "whole" not in float_problem.message
    cfg = parse(with_key("audio", "playback_buffer_s", " 2.5 "))
    assert cfg.audio.playback_buffer_s == 2.5 and isinstance(cfg.audio.mic_queue_ms, int)
    assert isinstance(parse(with_key("audio", "mic_queue_ms", "250")).audio.mic_queue_ms, int)


def test_negative_pins_mean_none_and_are_in_range():
    cfg = parse(with_key("gpio", "button_pin", "-1"))
    assert cfg.gpio.button_pin == -1


# -- yes/no, choices, lists, JSON, client ids, URLs ------------------------------------------
@pytest.mark.parametrize("raw", ["yes", "on", "true", "1", "YES", "On", "True"])
def test_every_yes_word_is_true(raw):
    cfg = parse(XUNA + f"[agent]\nhistory = {raw}\nbarge_in = {raw}\n"
                       f"[gpio]\nenabled = {raw}\nled = none\nbutton_pin = -1\n")
    assert cfg.agent.history is True and cfg.agent.barge_in is True and cfg.gpio.enabled is True


@pytest.mark.parametrize("raw", ["no", "off", "false", "0", "NO", "Off", "FALSE"])
def test_every_no_word_is_false(raw):
    cfg = parse(XUNA + f"[agent]\nhistory = {raw}\nbarge_in = {raw}\n[barge_in]\ngate = {raw}\n")
    assert cfg.agent.history is False and cfg.agent.barge_in is False
    assert cfg.barge_in.gate is False


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "n", "enabled"])
def test_other_words_are_not_yes_or_no(raw):
    found = problems(XUNA + f"[agent]\nhistory = {raw}\n")
    assert [(p.section, p.key) for p in found] == [("agent", "history")]
    assert raw in found[0].message and "yes" in found[0].message and "no" in found[0].message


def test_choices_ignore_case_and_a_wrong_one_lists_them_with_a_suggestion():
    cfg = parse(XUNA + "[audio]\nbackend = FILE\noutput_file = /tmp/out.wav\n[log]\nlevel = Debug\n")
    assert cfg.audio.backend == "file" and cfg.log.level == "debug"
    [problem] = problems(XUNA + "[log]\nlevel = verbos\n")
    assert (problem.section, problem.key) == ("log", "level")
    for allowed in ("debug", "info", "warning", "error"):
        assert allowed in problem.message
    [problem] = problems(XUNA + "[log]\nlevel = warnin\n")
    assert "'warning'" in problem.message  # did you mean
    [problem] = problems(XUNA + "[log]\nlevel = zzzzzz\n")
    assert "did you mean" not in problem.message


def test_lists_are_split_on_commas_and_empty_items_dropped():
    cfg = parse(XUNA + "[napster]\nfunctions = a, b,, c ,\ntags =\n")
    assert cfg.napster.functions == ("a", "b", "c")
    assert cfg.napster.tags == ()


def test_json_settings_must_be_objects():
    cfg = parse(XUNA + '[napster]\nprovider_settings = {"temperature": 0.7}\n'
                       "external_client_profile =\n")
    assert cfg.napster.provider_settings == {"temperature": 0.7}
    assert cfg.napster.external_client_profile is None
    for raw in ("{not json", "[1, 2]", '"text"', "3"):
        found = problems(XUNA + f"[napster]\nprovider_settings = {raw}\n")
        assert [(p.section, p.key) for p in found] == [("napster", "provider_settings")], raw
        assert "object" in found[0].message


def test_client_ids_are_1_to_32_safe_characters():
    cfg = parse(XUNA + "[napster]\nexternal_client_id = " + "a_B-9" * 6 + "xy\n")
    assert cfg.napster.external_client_id == "a_B-9" * 6 + "xy"
    assert parse(XUNA + "[napster]\nexternal_client_id =\n").napster.external_client_id == ""
    for bad in ("x" * 33, "kitchen pi", "pi/1", "pi.1"):
        found = problems(XUNA + f"[napster]\nexternal_client_id = {bad}\n")
        assert [(p.section, p.key) for p in found] == [("napster", "external_client_id")], bad
        assert bad in found[0].message


@pytest.mark.parametrize("url, ok", [
    ("wss://h.example/p", True), ("ws://127.0.0.1:9/p", True), ("https://h.example/p", False),
    ("http://h.example", False), ("wss://", False), ("h.example/p", False)])
def test_websocket_urls(url, ok):
    text = XUNA.replace("a1\n", f"a1\nurl = {url}\n")
    if ok:
        assert parse(text).xuna.url == url
    else:
        found = problems(text)
        assert [(p.section, p.key) for p in found] == [("xuna", "url")]
        assert "ws/wss" in found[0].message


@pytest.mark.parametrize("url, ok", [
    ("https://h.example", True), ("http://127.0.0.1:8080/base", True), ("wss://h.example", False),
    ("https://", False), ("ftp://h.example", False)])
def test_http_urls(url, ok):
    text = XUNA.replace("a1\n", f"a1\napi_url = {url}\n")
    if ok:
        assert parse(text).xuna.api_url == url
    else:
        assert where(text) == {("xuna", "api_url")}


def test_plain_values_are_kept_as_written_but_trimmed():
    cfg = parse(XUNA.replace("a1", "  agent 7  ") + "[agent]\nstate_dir = /srv/ev state\n")
    assert cfg.xuna.agent_id == "agent 7"
    assert cfg.agent.state_dir == "/srv/ev state"


# -- keys and sections -----------------------------------------------------------------------
def test_unknown_keys_suggest_a_known_one_including_secret_files():
    found = problems(XUNA + "[agent]\nprovidr = xuna\n")
    assert [(p.section, p.key) for p in found] == [("agent", "providr")]
    assert "'provider'" in found[0].message
    found = problems(XUNA.replace("a1\n", "a1\napi_key_fil = /k\n"))
    assert [(p.section, p.key) for p in found] == [("xuna", "api_key_fil")]
    assert "'api_key_file'" in found[0].message
    found = problems(XUNA + "[agent]\nqqqqqqqq = 1\n")
    assert "did you mean" not in found[0].message and "provider" in found[0].message


def test_every_problem_is_found_not_only_the_first():
    found = where(XUNA + "[agent]\nfoo = 1\nbar = 2\nhistory = perhaps\ntool_timeout = 0\n")
    assert found == {("agent", "foo"), ("agent", "bar"), ("agent", "history"),
                     ("agent", "tool_timeout")}


def test_sections_after_tools_and_after_an_unknown_section_are_still_read(tmp_path):
    tool = tmp_path / "t"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    cfg = parse(f"[tools]\nlights = {tool}\n[agent]\nprovider = voiceapi\n"
                "[voiceapi]\napi_url = https://v.example\napi_key = k3y-abcd\n")
    assert cfg.agent.provider == "voiceapi" and cfg.tools == (("lights", str(tool)),)
    found = where("[agnet]\nx = 1\n[agent]\nprovider = voiceapi\n[log]\nlevel = loud\n")
    assert ("agnet", "") in found and ("log", "level") in found
    assert ("voiceapi", "api_url") in found  # [agent] after the unknown section was read


def test_unknown_section_suggests_a_known_one():
    [problem] = problems(XUNA + "[sesion]\n")
    assert (problem.section, problem.key) == ("sesion", "")
    assert "'session'" in problem.message and str(problem).startswith("[sesion]: ")


def test_tools_keep_their_order_and_case():
    cfg = parse(XUNA + "[tools]\nZeta = /bin/true\nalpha = /bin/true\n")
    assert cfg.tools == (("Zeta", "/bin/true"), ("alpha", "/bin/true"))


def test_keys_are_case_sensitive():
    assert where(XUNA + "[agent]\nProvider = xuna\n") == {("agent", "Provider")}


def test_syntax_problems():
    for text in ("[xuna]\n[xuna]\nagent_id = a\n", "agent_id = a\n[xuna]\n",
                 "[xuna]\nagent_id = a\nnot a pair\n", "[xuna]\nagent_id = a\nagent_id = b\n"):
        with pytest.raises(ConfigError) as info:
            parse(text, "syn.conf")
        assert len(info.value.problems) == 1 and info.value.path == "syn.conf", text
    assert where("[xuna]\nagent_id = a\nagent_id = b\n") == {("xuna", "agent_id")}
    assert where("[xuna]\n[xuna]\n") == {("xuna", "")}
    [problem] = problems("x = 1\n[xuna]\n")
    assert "line 1" in problem.message
    [problem] = problems("[xuna]\nagent_id = a\n\nfoo\nbar\n")
    assert "line 4" in problem.message and "line 5" in problem.message


# -- rules that combine keys -----------------------------------------------------------------
@pytest.mark.parametrize("text, missing", [
    ("[agent]\nprovider = xuna\n", {("xuna", "agent_id")}),
    ("[agent]\nprovider = voiceapi\n", {("voiceapi", "api_url"), ("voiceapi", "api_key")}),
    ("[agent]\nprovider = voiceapi\n[voiceapi]\napi_url = https://v.example\n",
     {("voiceapi", "api_key")}),
    ("[agent]\nprovider = voiceapi\n[voiceapi]\napi_key = k3y-abcd\n", {("voiceapi", "api_url")}),
    ("[agent]\nprovider = napster\n", {("napster", "api_key"), ("napster", "companion_id")}),
    ("[agent]\nprovider = napster\n[napster]\napi_key = k3y-abcd\n", {("napster", "companion_id")}),
    ("[agent]\nprovider = napster\n[napster]\ncompanion_id = c\n", {("napster", "api_key")}),
    ("[agent]\nprovider = navtalk\n", {("navtalk", "license"), ("navtalk", "name")}),
    ("[agent]\nprovider = navtalk\n[navtalk]\nname = navtalk.Leo\n", {("navtalk", "license")}),
    ("[agent]\nprovider = navtalk\n[navtalk]\nlicense = lic-abcd\n", {("navtalk", "name")}),
])
def test_each_provider_needs_its_own_keys(text, missing):
    assert where(text) == missing


@pytest.mark.parametrize("text", [
    "[agent]\nprovider = xuna\n[xuna]\nagent_id = a\n",
    "[agent]\nprovider = voiceapi\n[voiceapi]\napi_url = https://v.example\napi_key = k3y-abcd\n",
    "[agent]\nprovider = napster\n[napster]\napi_key = k3y-abcd\ncompanion_id = c\n",
    "[agent]\nprovider = napster\n[napster]\napi_key = k3y-abcd\nagent_id = ag\n",
    "[agent]\nprovider = navtalk\n[navtalk]\nlicense = lic-abcd\nname = navtalk.Leo\n",
    "[agent]\nprovider = navtalk\n[navtalk]\nlicense = lic-abcd\navatar_id = av1\n",
])
def test_each_provider_is_complete_with_its_keys(text):
    cfg = parse(text)
    assert cfg.provider_settings() is getattr(cfg, cfg.agent.provider)


def test_other_providers_keys_are_not_required():
    # only the chosen provider's keys are checked
    cfg = parse("[agent]\nprovider = navtalk\n[navtalk]\nlicense = lic-abcd\nname = n\n")
    assert cfg.xuna.agent_id == "" and cfg.napster.api_key is None


@pytest.mark.parametrize("gpio, bad", [
    ("enabled = yes\nled = rgb\nred_pin = 5\ngreen_pin = 6\n", {("gpio", "red_pin")}),
    ("enabled = yes\nled = rgb\nred_pin = 5\ngreen_pin = 6\nblue_pin = 7\n", set()),
    ("enabled = no\nled = rgb\n", set()),
    ("enabled = yes\nled = pwm\nbutton_pin = 18\nled_pin = 18\n", {("gpio", "button_pin")}),
    ("enabled = yes\nled = onoff\nbutton_pin = 18\nled_pin = 18\n", {("gpio", "button_pin")}),
    ("enabled = no\nled = pwm\nbutton_pin = 18\nled_pin = 18\n", set()),
    ("enabled = yes\nled = none\nbutton_pin = 18\nled_pin = 18\n", set()),
    ("enabled = yes\nled = rgb\nbutton_pin = 18\nled_pin = 18\nred_pin = 5\ngreen_pin = 6\n"
     "blue_pin = 7\n", set()),
    ("enabled = yes\nled = rgb\nbutton_pin = 6\nred_pin = 5\ngreen_pin = 6\nblue_pin = 7\n",
     {("gpio", "button_pin")}),
    ("enabled = yes\nled = rgb\nred_pin = 5\ngreen_pin = 5\nblue_pin = 7\n",
     {("gpio", "button_pin")}),
    ("enabled = yes\nled = pwm\nbutton_pin = -1\nled_pin = -1\n", set()),
    ("enabled = yes\nled = rgb\ngreen_pin = 6\nblue_pin = 7\n", {("gpio", "red_pin")}),
    ("enabled = yes\nled = rgb\nred_pin = 5\nblue_pin = 7\n", {("gpio", "red_pin")}),
    ("enabled = yes\nled = rgb\nred_pin = 0\ngreen_pin = 6\nblue_pin = 7\nbutton_pin = 17\n",
     set()),  # BCM 0 is a pin
    ("enabled = yes\nled = pwm\nbutton_pin = 0\nled_pin = 0\n", {("gpio", "button_pin")}),
    ("enabled = yes\nled = none\nbutton_pin = 1\n", set()),
    ("enabled = yes\nled = pwm\nled_pin = 18\nbutton_pin = 5\nred_pin = 5\n", set()),
])
def test_gpio_pins(gpio, bad):
    text = XUNA + "[gpio]\n" + gpio
    if bad:
        assert where(text) == bad
    else:
        assert parse(text).gpio.enabled in (True, False)


def test_tools_must_be_absolute_executable_files(tmp_path):
    runnable = tmp_path / "run"
    runnable.write_text("#!/bin/sh\n")
    runnable.chmod(0o755)
    plain = tmp_path / "plain"
    plain.write_text("")
    plain.chmod(0o644)
    folder = tmp_path / "dir"
    folder.mkdir()
    text = (XUNA + f"[tools]\nok = {runnable}\nplain = {plain}\nfolder = {folder}\n"
            f"missing = {tmp_path}/nope\nrelative = bin/tool\n")
    assert where(text) == {("tools", "plain"), ("tools", "folder"), ("tools", "missing"),
                           ("tools", "relative")}


def test_file_backend_rules(tmp_path):
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"RIFF")
    ok = XUNA + f"[audio]\nbackend = file\ninput_file = {wav}\noutput_file = {tmp_path}/o.wav\n"
    assert parse(ok).audio.input_file == str(wav)
    silent = XUNA + f"[audio]\nbackend = file\noutput_file = {tmp_path}/o.wav\n"
    assert parse(silent).audio.input_file == ""
    assert where(XUNA + f"[audio]\nbackend = file\ninput_file = {tmp_path}\n"
                        f"output_file = {tmp_path}/o.wav\n") == {("audio", "input_file")}
    assert where(XUNA + "[audio]\nbackend = file\n") == {("audio", "output_file")}
    assert where(XUNA + f"[audio]\nbackend = file\noutput_file = {tmp_path}/no/o.wav\n") == {
        ("audio", "output_file")}
    # the alsa backend ignores the file keys
    assert parse(XUNA + f"[audio]\ninput_file = {tmp_path}/nope.wav\n").audio.backend == "alsa"


def test_a_default_section_is_just_an_unknown_section():
    # configparser's [DEFAULT] would otherwise copy its keys into every section
    assert where("[DEFAULT]\nx = 1\n" + XUNA) == {("DEFAULT", "")}


def test_percent_signs_are_kept_as_written():
    cfg = parse(XUNA.replace("a1\n", "a1\nprompt = 100% sure, %(name)s and %%\n"))
    assert cfg.xuna.prompt == "100% sure, %(name)s and %%"


def test_syntax_problems_have_no_key():
    for text in ("x = 1\n[xuna]\n", "[xuna]\nagent_id = a\nfoo\n"):
        [problem] = problems(text)
        assert (problem.section, problem.key) == ("?", "")


# -- limits on what a value may hold (issue 10) ---------------------------------------------
def test_a_value_may_be_64k_characters_and_not_one_more():
    longest = "p" * 65536
    assert parse(XUNA + f"prompt = {longest}\n").xuna.prompt == longest
    assert where(XUNA + f"prompt = {longest}p\n") == {("xuna", "prompt")}


def test_a_nul_character_is_refused_in_any_value_secret_or_tool():
    assert where(XUNA + "prompt = a\x00b\n") == {("xuna", "prompt")}
    assert where(XUNA + "api_key = k\x00y\n") == {("xuna", "api_key")}
    assert where(XUNA + "api_key_file = /tmp/k\x00y\n") == {("xuna", "api_key_file")}
    [problem] = problems(XUNA + "[tools]\nlights = /bin/l\x00x\n")
    assert (problem.section, problem.key) == ("tools", "lights") and "NUL" in problem.message


def test_an_inline_secret_may_be_64k_and_not_one_more():
    longest = "k" * 65536
    assert parse(XUNA + f"api_key = {longest}\n").xuna.api_key.reveal() == longest
    assert where(XUNA + f"api_key = {longest}k\n") == {("xuna", "api_key")}


def test_a_tool_path_longer_than_4096_is_refused_as_too_long_not_looked_up():
    # 4096 characters: looked up (and not found); 4097: refused for its length
    at_limit = "/" + "t" * 4095
    [problem] = problems(XUNA + f"[tools]\nlong = {at_limit}\n")
    assert problem.key == "long" and "executable" in problem.message
    [problem] = problems(XUNA + f"[tools]\nlong = {at_limit}t\n")
    assert problem.key == "long" and "too long" in problem.message


def test_numbers_must_be_finite():
    for raw in ("inf", "-inf", "nan", "1e999"):
        [problem] = problems(with_key("audio", "playback_buffer_s", raw))
        assert (problem.section, problem.key) == ("audio", "playback_buffer_s"), raw
        assert "1" in problem.message and "600" in problem.message  # the accepted range


def test_a_long_value_that_is_no_number_is_quoted_only_in_part():
    # a pasted secret in the wrong key must not be echoed whole
    [problem] = problems(with_key("audio", "mic_queue_ms", "s" * 40 + "ECRET"))
    assert "s" * 40 in problem.message and "sE" not in problem.message


def test_json_constants_and_deep_nesting_are_refused_not_crashed_on():
    for raw in ('{"t": NaN}', '{"t": Infinity}', '{"t": -Infinity}', "[" * 5000):
        [problem] = problems(with_key("napster", "provider_settings", raw))
        assert (problem.section, problem.key) == ("napster", "provider_settings"), raw[:20]
    assert "deeply" in problems(with_key("napster", "provider_settings", "[" * 5000))[0].message
    assert "NaN" in problems(with_key("napster", "provider_settings", '{"t": NaN}'))[0].message


def test_a_path_the_system_cannot_look_up_is_refused_but_other_values_are_not_paths():
    long_name = "/tmp/" + "d" * 300
    assert where(with_key("agent", "state_dir", long_name)) == {("agent", "state_dir")}
    # a missing path is fine (created later); a long word elsewhere is no path at all
    assert parse(with_key("agent", "state_dir", "/nonexistent/state")).agent.state_dir
    assert parse(XUNA + f"prompt = {long_name}\n").xuna.prompt == long_name


def test_room_backend_rules(tmp_path):
    ir = tmp_path / "ir.wav"
    ir.write_bytes(b"RIFF")
    out = f"output_file = {tmp_path}/o.wav\n"
    room = XUNA + "[audio]\nbackend = room\n"
    cfg = parse(room + f"room_ir = {ir}\n" + out)
    assert cfg.audio.room_ir == str(ir) and cfg.audio.room_user_ir == ""
    assert parse(room + f"room_ir = {ir}\nroom_user_ir = {ir}\n" + out).audio.room_user_ir
    assert where(room + out) == {("audio", "room_ir")}
    assert where(room + f"room_ir = {tmp_path}/none.wav\n" + out) == {("audio", "room_ir")}
    assert where(room + f"room_ir = {tmp_path}\n" + out) == {("audio", "room_ir")}  # a folder
    assert where(room + f"room_ir = {ir}\nroom_user_ir = {tmp_path}/none.wav\n" + out) == {
        ("audio", "room_user_ir")}
    # like the file backend: the speaker's output goes to a file; the input may be a file
    assert where(room + f"room_ir = {ir}\n") == {("audio", "output_file")}
    assert where(room + f"room_ir = {ir}\ninput_file = {tmp_path}/none.wav\n" + out) == {
        ("audio", "input_file")}
    # other backends ignore the room keys
    assert parse(XUNA + f"[audio]\nroom_ir = {tmp_path}/none.wav\n").audio.backend == "alsa"
