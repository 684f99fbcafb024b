"""AES-256-GCM for the secrets AWFDRS stores, and the masks under which they are shown.

A sealed value reads `v1:<key id>:<nonce>:<ciphertext>` (nonce and ciphertext in unpadded
base64url). The key id names the key that sealed it, so values sealed under an older key stay
readable while `AWFDRS_SECRET_KEYS_PREVIOUS` holds that key, until `awfdrs secrets rotate`
seals them again under `AWFDRS_SECRET_KEY`. The associated data binds each value to its
purpose and tenant: a value copied to another column or tenant does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from settings import ENV_PREFIX, Settings, SettingsError

KEY_VARIABLE = f"{ENV_PREFIX}SECRET_KEY"
PREVIOUS_VARIABLE = f"{ENV_PREFIX}SECRET_KEYS_PREVIOUS"
FORMAT = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
MASK = "••••"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class SecretKeyError(SettingsError):
    """The secret key is missing, malformed, or cannot open a stored value."""


@dataclass(frozen=True)
class AesKey:
    """One AES-256 key and the id stored beside everything it seals."""

    key_id: str
    material: bytes = field(repr=False)


def _b64decode(text: str) -> bytes:
    # Standard or URL-safe alphabet, padded or not: operators paste keys from many tools.
    normalised = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(normalised + "=" * (-len(normalised) % 4), validate=True)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def derived_key_id(material: bytes) -> str:
    """Return the key id of a key given without one: a short digest of the key."""
    return hashlib.sha256(b"awfdrs-secret-key-id:" + material).hexdigest()[:8]


def parse_key(text: str) -> AesKey:
    """Parse `[<key id>:]<base64 of 32 bytes>`; the id is derived from the key when omitted."""
    key_id, _, encoded = text.strip().rpartition(":")
    try:
        material = _b64decode(encoded)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 (of 32 random bytes)") from None
    if len(material) != KEY_BYTES:
        raise ValueError(f"must be base64 of {KEY_BYTES} bytes (got {len(material)})")
    if key_id and not _KEY_ID.fullmatch(key_id):
        raise ValueError("a key id before ':' may only use letters, digits, '_' and '-'")
    return AesKey(key_id or derived_key_id(material), material)


def is_sealed(value: str) -> bool:
    """Tell whether a stored value is in the sealed format (rather than plaintext)."""
    parts = value.split(":")
    return len(parts) == 4 and parts[0] == FORMAT and bool(_KEY_ID.fullmatch(parts[1]))


class SecretBox:
    """Seals under the current key; opens under any configured key, found by its id."""

    def __init__(self, current: AesKey, previous: Sequence[AesKey] = ()) -> None:
        self.current_key_id = current.key_id
        self._ciphers = {key.key_id: AESGCM(key.material) for key in (*previous, current)}

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """Build the box from AWFDRS_SECRET_KEY (required) and AWFDRS_SECRET_KEYS_PREVIOUS."""
        current = parse_key(settings.require_secret_key())
        previous = [parse_key(key.get_secret_value()) for key in settings.secret_keys_previous]
        return cls(current, previous)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """Seal `plaintext` under the current key, bound to `context`."""
        nonce = os.urandom(NONCE_BYTES)
        key_id = self.current_key_id
        sealed = self._ciphers[key_id].encrypt(nonce, plaintext.encode(), _aad(key_id, context))
        return f"{FORMAT}:{key_id}:{_b64encode(nonce)}:{_b64encode(sealed)}"

    def decrypt(self, value: str, *, context: str) -> str:
        """Open a sealed value; fail naming AWFDRS_SECRET_KEY when no configured key can."""
        if not is_sealed(value):
            raise SecretKeyError(f"{KEY_VARIABLE}: a stored secret is not in the sealed format")
        _, key_id, nonce, sealed = value.split(":")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SecretKeyError(
                f"{KEY_VARIABLE}: stored secrets are sealed under key id {key_id!r}, which is "
                f"neither {KEY_VARIABLE} (key id {self.current_key_id!r}) nor in "
                f"{PREVIOUS_VARIABLE}: set the key they were sealed with"
            )
        try:
            opened = cipher.decrypt(_b64decode(nonce), _b64decode(sealed), _aad(key_id, context))
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretKeyError(
                f"{KEY_VARIABLE}: the key with id {key_id!r} cannot decrypt a stored secret "
                "(a different key under the same id, or an altered row)"
            ) from None
        return opened.decode()


def _aad(key_id: str, context: str) -> bytes:
    return f"awfdrs:{FORMAT}:{key_id}:{context}".encode()


def mask_url(url: str) -> str:
    """Show a URL that may embed a token as `scheme://host/…••••last4`."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:  # unparsable: show nothing of it but its end
        return f"…{MASK}{url[-4:]}"
    prefix = f"{parts.scheme}://{host}/" if parts.scheme and host else ""
    return f"{prefix}…{MASK}{url[-4:]}"


def mask_secret(last4: str) -> str:
    """Show a secret by its last four characters only."""
    return f"{MASK}{last4}"
