"""Secrets out of logs: which strings count as secrets, how long run-time tokens are
remembered, scrubbing when one secret contains another, URLs, exception descriptions."""

from __future__ import annotations

import logging
import uuid

import pytest

from edgevoice import redact
from edgevoice.redact import MASK, ScrubbingFormatter, Secret, describe_error, redact_url, register, scrub


def fresh(prefix: str = "tok") -> str:
    """A secret no other test has registered."""
    return f"{prefix}-{uuid.uuid4().hex}"


def test_a_secret_never_shows_itself():
    value = fresh("key")
    secret = Secret(value, "file /etc/k")
    assert str(secret) == MASK and value not in repr(secret)
    assert "file /etc/k" in repr(secret) and secret.source == "file /etc/k"
    assert f"{secret}" == MASK and value not in f"{secret!r}"
    assert secret.reveal() == value
    assert Secret(fresh()).source == "config"


def test_secret_truth_equality_and_hash():
    value = fresh()
    assert Secret(value) == Secret(value, "elsewhere")
    assert hash(Secret(value)) == hash(Secret(value))
    assert Secret(value) != Secret(fresh())
    assert Secret(value) != value  # a plain string is not a secret
    assert bool(Secret(value)) is True and bool(Secret("")) is False
    assert len({Secret(value), Secret(value, "x")}) == 1


def test_a_secret_is_scrubbed_as_soon_as_it_exists():
    value = fresh()
    Secret(value)
    assert scrub(f"key={value}; again {value}.") == f"key={MASK}; again {MASK}."


@pytest.mark.parametrize("permanent", [True, False])
def test_strings_shorter_than_four_characters_are_not_secrets(permanent):
    register("q7z", permanent=permanent)
    register("", permanent=permanent)
    register(None, permanent=permanent)
    assert scrub("q7z stays") == "q7z stays"
    four = "Zq" + uuid.uuid4().hex[:2]
    register(four, permanent=permanent)
    assert scrub(f"x {four} y") == f"x {MASK} y"


def test_the_longer_of_two_overlapping_secrets_is_scrubbed_whole():
    short = fresh("pre")
    long = short + "-and-the-rest"
    register(short)
    register(long, permanent=True)
    assert scrub(f"[{long}] [{short}]") == f"[{MASK}] [{MASK}]"
    other_short = fresh("pre")
    other_long = other_short + "XYZW"
    register(other_long)
    register(other_short, permanent=True)
    assert scrub(other_long) == MASK


def test_run_time_tokens_are_remembered_for_the_last_64_only():
    oldest = fresh("old")
    register(oldest)
    for _ in range(63):
        register(fresh())
    assert scrub(oldest) == MASK  # 64 held: still there
    register(fresh())
    assert scrub(oldest) == oldest  # the 65th pushed it out


def test_a_token_registered_again_takes_no_second_place():
    kept = fresh("kept")
    register(kept)
    repeated = fresh("rep")
    for _ in range(100):
        register(repeated)
    assert scrub(kept) == MASK and scrub(repeated) == MASK


def test_config_secrets_are_never_forgotten():
    permanent = fresh("perm")
    register(permanent, permanent=True)
    for _ in range(200):
        register(fresh())
    assert scrub(permanent) == MASK


@pytest.mark.parametrize("url, shown", [
    ("wss://h.example/v1/c?agent_id=ag1&token=T0KEN&x=", "wss://h.example/v1/c?agent_id=ag1&token=***&x=***"),
    ("wss://u:pw@h.example:8443/p?name=navtalk.Leo&license=L1C", "wss://h.example:8443/p?name=navtalk.Leo&license=***"),
    ("wss://h.example/p?avatarId=a&avatar_id=b&sig=s#frag", "wss://h.example/p?avatarId=a&avatar_id=b&sig=***"),
    ("https://h.example/plain", "https://h.example/plain"),
])
def test_urls_are_shown_with_credentials_masked(url, shown):
    assert redact_url(url) == shown


def test_an_unparseable_url_is_masked_whole():
    assert redact_url("wss://[::1/p?token=abc") == MASK


def test_describe_error_is_one_scrubbed_line_of_bounded_length():
    value = fresh()
    register(value)
    assert describe_error(ValueError(f"bad\n  key {value}\tthere")) == f"ValueError: bad key {MASK} there"
    assert describe_error(KeyboardInterrupt()) == "KeyboardInterrupt"
    long = describe_error(RuntimeError("x" * 2000))
    assert len(long) == 500 and long.startswith("RuntimeError: xxx")


def test_the_log_formatter_scrubs_messages_arguments_and_tracebacks():
    value = fresh()
    register(value)
    formatter = ScrubbingFormatter("%(levelname)s %(message)s")
    try:
        raise RuntimeError(f"failed with {value}")
    except RuntimeError:
        import sys
        exc_info = sys.exc_info()
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "token %s", (value,), exc_info)
    text = formatter.format(record)
    assert value not in text
    assert text.startswith(f"WARNING token {MASK}") and "RuntimeError: failed with ***" in text


def test_the_mask_is_three_stars():
    assert MASK == "***" and redact._MIN_SECRET_LEN == 4


def test_a_secret_from_the_config_is_never_forgotten():
    value = fresh("cfg")
    Secret(value)
    for _ in range(100):
        register(fresh())
    assert scrub(value) == MASK


def test_different_secrets_hash_apart():
    assert hash(Secret(fresh())) != hash(Secret(fresh()))


def test_a_secret_inside_a_longer_one_does_not_leave_the_rest_showing():
    inner = "zz" + fresh()
    outer = "aa-" + inner + "-tail"
    register(inner)
    register(outer)
    assert scrub(f"<{outer}>") == f"<{MASK}>"


def test_a_password_with_an_at_sign_is_removed_whole():
    assert redact_url("wss://user:p@ss@h.example/p?x=1") == "wss://h.example/p?x=***"
