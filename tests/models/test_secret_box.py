"""AES-GCM sealing: round trips, key ids for rotation, bound contexts, errors naming the key."""

from __future__ import annotations

import base64
import os
import re

import pytest

from models.secret_box import (
    SecretBox,
    SecretKeyError,
    derived_key_id,
    is_sealed,
    mask_url,
    parse_key,
)
from settings import SettingsError, load_settings


def _key_text(key_id: str = "") -> str:
    material = base64.b64encode(os.urandom(32)).decode()
    return f"{key_id}:{material}" if key_id else material


def test_a_sealed_value_opens_and_shows_nothing_of_the_plaintext() -> None:
    box = SecretBox(parse_key(_key_text()))
    sealed = box.encrypt("whsec_c2VjcmV0", context="signing_secret:t1")
    assert is_sealed(sealed) and "c2VjcmV0" not in sealed
    assert sealed.split(":")[1] == box.current_key_id
    assert box.decrypt(sealed, context="signing_secret:t1") == "whsec_c2VjcmV0"
    # A fresh nonce each time: equal plaintexts do not give equal rows.
    assert box.encrypt("same", context="c") != box.encrypt("same", context="c")


def test_a_value_moved_to_another_tenant_or_column_does_not_open() -> None:
    box = SecretBox(parse_key(_key_text()))
    sealed = box.encrypt("https://hooks.example.com/T0KEN", context="escalation_webhook_url:a")
    for context in ("escalation_webhook_url:b", "signing_secret:a"):
        with pytest.raises(SecretKeyError, match="AWFDRS_SECRET_KEY"):
            box.decrypt(sealed, context=context)


def test_a_wrong_key_under_the_same_id_is_refused_naming_the_variable() -> None:
    sealed = SecretBox(parse_key(_key_text("k1"))).encrypt("x", context="c")
    with pytest.raises(SecretKeyError, match="AWFDRS_SECRET_KEY: the key with id 'k1' cannot"):
        SecretBox(parse_key(_key_text("k1"))).decrypt(sealed, context="c")


def test_a_value_under_an_unconfigured_key_names_both_variables() -> None:
    sealed = SecretBox(parse_key(_key_text())).encrypt("x", context="c")
    with pytest.raises(SecretKeyError) as refused:
        SecretBox(parse_key(_key_text())).decrypt(sealed, context="c")
    assert str(refused.value).startswith("AWFDRS_SECRET_KEY: ")
    assert "AWFDRS_SECRET_KEYS_PREVIOUS" in str(refused.value)


def test_previous_keys_open_what_they_sealed_and_new_values_use_the_current_key() -> None:
    old, new = parse_key(_key_text()), parse_key(_key_text())
    sealed = SecretBox(old).encrypt("x", context="c")
    rotating = SecretBox(new, [old])
    assert rotating.decrypt(sealed, context="c") == "x"
    assert rotating.encrypt("x", context="c").split(":")[1] == new.key_id != old.key_id


def test_key_ids_are_derived_or_given() -> None:
    material = os.urandom(32)
    encoded = base64.urlsafe_b64encode(material).decode().rstrip("=")  # URL-safe, unpadded
    assert parse_key(encoded).key_id == derived_key_id(material)
    assert parse_key(f"2026-q1:{encoded}").key_id == "2026-q1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!", "must be base64"),
        (base64.b64encode(b"short").decode(), "must be base64 of 32 bytes (got 5)"),
        (f"bad id:{_key_text()}", "a key id"),
    ],
)
def test_a_malformed_key_is_a_settings_error_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(f"AWFDRS_SECRET_KEY: {message}")):
        load_settings(secret_key=value)
    with pytest.raises(SettingsError, match=re.escape(f"AWFDRS_SECRET_KEYS_PREVIOUS: {message}")):
        load_settings(secret_keys_previous=value)


def test_previous_keys_are_comma_separated_and_may_not_repeat_an_id() -> None:
    current, other = _key_text("a"), _key_text("b")
    settings = load_settings(secret_key=current, secret_keys_previous=f"{other}, {_key_text()}")
    assert len(settings.secret_keys_previous) == 2
    with pytest.raises(SettingsError, match="AWFDRS_SECRET_KEYS_PREVIOUS: repeats a key id"):
        load_settings(secret_key=current, secret_keys_previous=_key_text("a"))


def test_a_missing_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWFDRS_SECRET_KEY", raising=False)
    with pytest.raises(SettingsError, match=r"^AWFDRS_SECRET_KEY: must be set"):
        SecretBox.from_settings(load_settings(env="production"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T000/B000/XXXXabcd",
            "https://hooks.slack.com/…••••abcd",
        ),
        ("http://127.0.0.1:8080/page?token=s3cr3t9z", "http://127.0.0.1:8080/…••••3t9z"),
        ("https://user:pw@example.com/x/yz12", "https://example.com/…••••yz12"),
    ],
)
def test_urls_are_masked_to_scheme_host_and_last_four(url: str, shown: str) -> None:
    assert mask_url(url) == shown
