"""The PII vault's cipher: AES-256-GCM per field, bound to its case and field name.

A stored value is ``key_id (1 byte) | nonce (12 bytes) | ciphertext+tag``. The associated data is
``case_id/field``, so a ciphertext copied to another row or column fails to decrypt instead of leaking
someone else's number. ``key_id`` lets keys rotate: old rows stay readable while new rows use the new key.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Development-only key (32 zero-free bytes, base64url); IntakeSettings refuses it in production.
DEVELOPMENT_KEY = "ZGV2ZWxvcG1lbnQtb25seS1waWktdmF1bHQta2V5ISE="


class VaultError(ValueError):
    """A vault value that cannot be decrypted with the configured keys."""


class VaultCipher:
    """Encrypts and decrypts vault fields with the current key; decrypts with any configured key."""

    def __init__(self, keys: dict[int, bytes], current: int) -> None:
        if current not in keys:
            raise ValueError(f"current vault key {current} is not configured")
        for key_id, key in keys.items():
            if not 0 < key_id < 256 or len(key) != 32:
                raise ValueError("vault keys are 32 bytes with ids 1..255")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current

    @classmethod
    def from_setting(cls, value: str) -> VaultCipher:
        """``"<b64key>"`` or ``"2:<b64key>,1:<b64key>"`` (first entry = current key)."""
        keys: dict[int, bytes] = {}
        current = None
        for index, part in enumerate(p.strip() for p in value.split(",") if p.strip()):
            key_id, _, b64 = part.rpartition(":") if ":" in part else ("1", "", part)
            keys[int(key_id)] = base64.urlsafe_b64decode(b64)
            if index == 0:
                current = int(key_id)
        if current is None:
            raise ValueError("no vault key configured")
        return cls(keys, current)

    def seal(self, case_id: str, field: str, clear: str | None) -> bytes | None:
        """Encrypt one field value (None stays None)."""
        if clear is None:
            return None
        nonce = os.urandom(12)
        sealed = self._ciphers[self._current].encrypt(nonce, clear.encode(), f"{case_id}/{field}".encode())
        return bytes([self._current]) + nonce + sealed

    def open(self, case_id: str, field: str, sealed: bytes | None) -> str | None:
        """Decrypt one field value (None stays None); VaultError if it is not ours."""
        if sealed is None:
            return None
        cipher = self._ciphers.get(sealed[0])
        if cipher is None:
            raise VaultError(f"vault key {sealed[0]} is not configured")
        try:
            return cipher.decrypt(sealed[1:13], sealed[13:], f"{case_id}/{field}".encode()).decode()
        except InvalidTag as exc:
            raise VaultError("vault value failed authentication") from exc
