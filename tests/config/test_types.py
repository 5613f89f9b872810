"""Each config value type on its own: what it accepts, what it refuses (and that the
message says what is expected), and how it renders a value back."""

from __future__ import annotations

import json

import pytest

from edgevoice import redact
from edgevoice.config.types import (MAX_SECRET_BYTES, Boolean, Choice, Float, Integer, Invalid,
                                    Json, List, Path, Pattern, Secret, Text, Url)


def refused(value_type, raw: str) -> str:
    with pytest.raises(Invalid) as info:
        value_type.parse(raw)
    return str(info.value)


def test_text_takes_anything_and_renders_unset_as_empty():
    assert Text().parse("any thing, at all") == "any thing, at all"
    assert Text().render("x") == "x" and Text().render(None) == ""


def test_integer_in_range_refuses_fractions_words_and_out_of_range():
    t = Integer(-1, 63)
    assert t.parse("-1") == -1 and t.parse("63") == 63 and isinstance(t.parse("5"), int)
    assert "whole number" in refused(t, "2.5") and "whole number" in refused(t, "pin")
    message = refused(t, "64")
    assert "out of range" in message and "-1 to 63" in message
    assert t.render(17) == "17"


def test_float_in_range_refuses_words_infinities_and_out_of_range():
    t = Float(0.5, 60.0)
    assert t.parse("0.5") == 0.5 and t.parse("60") == 60.0
    message = refused(t, "ten")
    assert "is not a number" in message and "whole" not in message
    assert "finite" in refused(t, "inf") and "0.5 to 60" in refused(t, "nan")
    assert "out of range" in refused(t, "60.000001")
    assert t.render(8.0) == "8.0"


@pytest.mark.parametrize("raw, value", [("yes", True), ("On", True), ("TRUE", True), ("1", True),
                                        ("no", False), ("off", False), ("False", False),
                                        ("0", False)])
def test_boolean_words(raw, value):
    assert Boolean().parse(raw) is value


def test_boolean_refuses_other_words_and_renders_yes_no():
    assert "yes/no" in refused(Boolean(), "maybe")
    assert Boolean().render(True) == "yes" and Boolean().render(False) == "no"


def test_choice_lowers_case_lists_the_choices_and_suggests_the_closest():
    t = Choice("pwm", "onoff", "rgb", "none")
    assert t.parse("RGB") == "rgb" and t.choices == ("pwm", "onoff", "rgb", "none")
    message = refused(t, "onof")
    assert "pwm, onoff, rgb, none" in message and "did you mean 'onoff'" in message
    assert "did you mean" not in refused(t, "xyzzy")
    assert t.render("rgb") == "rgb"


def test_path_may_be_missing_but_not_unusable():
    assert Path().parse("") == ""
    assert Path().parse("/nonexistent/file.wav") == "/nonexistent/file.wav"
    assert "unusable path" in refused(Path(), "/" + "x" * 5000)


def test_url_needs_its_scheme_and_a_host():
    t = Url("ws", "wss")
    assert t.parse("wss://api.test/v1") == "wss://api.test/v1"
    for raw in ("https://api.test/v1", "wss://", ""):
        message = refused(t, raw)
        assert "ws/wss URL" in message and "wss://host/path" in message
    assert "https://host/path" in refused(Url("http", "https"), "ftp://x")


def test_pattern_allows_empty_and_names_what_is_expected():
    t = Pattern(r"[a-z]{1,3}", "1-3 lower-case letters")
    assert t.parse("") == "" and t.parse("abc") == "abc"
    assert refused(t, "abcd") == "'abcd' must be 1-3 lower-case letters"


def test_list_splits_on_commas_and_drops_empty_items():
    assert List().parse(" a, b ,,c ") == ("a", "b", "c") and List().parse("") == ()
    assert List().render(("a", "b")) == "a, b"


def test_json_takes_objects_only_and_empty_as_unset():
    t = Json()
    assert t.parse('{"t": 0.7, "x": [1]}') == {"t": 0.7, "x": [1]} and t.parse("") is None
    assert "not valid JSON" in refused(t, "{nope") and "column" in refused(t, "{nope")
    assert "NaN is not a number JSON allows" in refused(t, '{"a": NaN}')
    assert "nested too deeply" in refused(t, "[" * 100_000 + "]" * 100_000)
    assert "expected a JSON object" in refused(t, "[1, 2]")
    assert json.loads(t.render({"a": 1})) == {"a": 1} and t.render(None) == ""


def test_secret_inline_is_held_masked_and_refuses_nul_and_huge_values():
    t = Secret()
    value = t.parse("inline-key-1")
    assert isinstance(value, redact.Secret) and value.reveal() == "inline-key-1"
    assert t.secret and not Text().secret
    assert "NUL" in refused(t, "a\x00b") and "too long" in refused(t, "k" * (MAX_SECRET_BYTES + 1))
    rendered = t.render(redact.Secret("inline-key-1", "file /k"))
    assert "inline-key-1" not in rendered and redact.MASK in rendered and "file /k" in rendered
    assert t.render(None) == ""


def test_the_barge_in_section_is_the_detectors_settings_class():
    from edgevoice.audio.bargein import BargeInDetector, BargeInSettings, SpeakerLevels
    from edgevoice.config import documented_keys, parse
    cfg = parse("[xuna]\nagent_id = a1\n[barge_in]\nonset_frames = 5\ngate = no\n")
    assert type(cfg.barge_in) is BargeInSettings
    detector = BargeInDetector(cfg.barge_in, 16000, SpeakerLevels(), confirm_locally=True)
    assert detector.s.onset_frames == 5 and detector.s.gate is False
    assert detector.s.provisional_ms == BargeInSettings().provisional_ms  # a tunable, not a key
    assert "provisional_ms" not in documented_keys()["barge_in"]
    assert "onset_frames" in documented_keys()["barge_in"]
