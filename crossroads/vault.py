"""Provider keys at rest: AES-256-GCM under a master key that never enters the database.

The master key comes from ``CROSSROADS_MASTER_KEY`` (base64 of 32 bytes) or from
``<data_dir>/master.key``, created at first start with mode 0600.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crossroads.errors import GatewayError

_VERSION = b"v1"


class Vault:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise GatewayError("master key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, master_key: str | None, data_dir: Path) -> Vault:
        if master_key:
            return cls(base64.b64decode(master_key))
        path = data_dir / "master.key"
        if path.exists():
            return cls(base64.b64decode(path.read_bytes().strip()))
        data_dir.mkdir(parents=True, exist_ok=True)
        key = AESGCM.generate_key(bit_length=256)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(key))
        return cls(key)

    def encrypt(self, plaintext: str, context: str) -> str:
        """``context`` (gateway/provider/alias) is bound as associated data: a ciphertext
        copied to another row does not decrypt."""
        nonce = secrets.token_bytes(12)
        ct = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return (_VERSION + b":" + base64.b64encode(nonce + ct)).decode()

    def decrypt(self, token: str, context: str) -> str:
        version, _, payload = token.encode().partition(b":")
        if version != _VERSION:
            raise GatewayError("unknown key encryption version")
        raw = base64.b64decode(payload)
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()


def preview(secret: str) -> str:
    """What may be shown of a key: its first and last characters only."""
    if len(secret) <= 8:
        return "*" * len(secret)
    return secret[:3] + "…" + secret[-4:]
