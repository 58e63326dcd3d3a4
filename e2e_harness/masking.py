"""Keeps secrets out of logs, reports and failure bundles.

Every secret value the harness learns (Secrets it reads or creates, tokens,
passwords) is registered here; ``mask`` replaces each occurrence, and a few shapes
are masked even when their value was never registered: PGP private key blocks,
JWTs, PEM private keys.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading

MASK = "***MASKED***"
MIN_LENGTH = 4  # shorter values are too common in ordinary text to mask safely
SHAPES = (
    re.compile(r"-----BEGIN PGP PRIVATE KEY BLOCK-----.*?-----END PGP PRIVATE KEY BLOCK-----", re.DOTALL),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\b"),  # JWT
)


class SecretMasker:
    def __init__(self):
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str | bytes | None) -> None:
        if value is None:
            return
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        candidates = {value, value.strip()}
        # A multi-line secret (a key) is also masked line by line, in case a tool prints it reflowed.
        candidates |= {line.strip() for line in value.splitlines()}
        with self._lock:
            self._values |= {c for c in candidates if len(c) >= MIN_LENGTH}

    def add_secret_object(self, secret: dict) -> None:
        """Register every value of a Kubernetes Secret (``data`` base64, ``stringData`` plain)."""
        for encoded in (secret.get("data") or {}).values():
            self.add(encoded)
            try:
                self.add(base64.b64decode(encoded or "", validate=False))
            except (binascii.Error, ValueError):
                pass
        for plain in (secret.get("stringData") or {}).values():
            self.add(plain)

    def values(self) -> list[str]:
        """Every registered secret value (for the self-test that searches a run's files for them)."""
        with self._lock:
            return sorted(self._values)

    def mask(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        for shape in SHAPES:
            text = shape.sub(MASK, text)
        return text
