"""Pinned downloads: a file fetched once into the cache, and verified by its pinned sha256 before every use.

What a recipe takes from outside Debian's archive (a PostgreSQL build published on PyPI) is named by
its URL and sha256 (``Pinned``). ``fetch`` downloads it the first time into
``$XDG_CACHE_HOME/e2e-harness/downloads/<sha256 prefix>/<name>`` (a new machine starts bare), under a
lock so that two runs download it once, and checks the bytes against the pin before it hands the file
out, every time: a file whose sha256 is not the pinned one is deleted and the call fails naming the
expected and the actual digest.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from . import progress
from .gomodules import cache_root
from .locks import exclusive
from .waiting import WaitTimeout

DOWNLOAD_TIMEOUT = 600      # seconds for one download (tens of MB)
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A pinned download could not be fetched, or its bytes are not the pinned ones; says which."""


@dataclass(frozen=True)
class Pinned:
    """A file on the internet, pinned by its sha256; ``source`` says what it is (for reports)."""

    url: str
    sha256: str
    source: str = ""

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def default_cache_dir() -> Path:
    return cache_root() / "downloads"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, sha256: str, what: str) -> None:
    """``path`` holds the bytes whose sha256 is ``sha256``; otherwise it is deleted and DownloadError names
    the expected and the actual digest."""
    actual = sha256_of(path)
    if actual != sha256.lower():
        path.unlink(missing_ok=True)
        raise DownloadError(f"{what}: {path} has sha256 {actual}, expected {sha256.lower()} (the pin); the file "
                            "was deleted. A download that keeps arriving with another digest means the file "
                            "changed upstream: check it, and pin its new digest only if it is the same release")


def fetch(pinned: Pinned, cache_dir: Path | None = None, say: Callable[[str], None] = progress.say,
          timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """The pinned file from the cache, downloaded first if missing; verified against its sha256 either way."""
    directory = (cache_dir or default_cache_dir()) / pinned.sha256.lower()[:16]
    target = directory / pinned.name
    what = f"{pinned.source or pinned.name} ({pinned.url})"
    if not target.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        try:
            with exclusive(directory / f".{pinned.name}.lock", what=f"downloading {pinned.name}", timeout=timeout,
                           say=say, holder="another run that is downloading it"):
                if not target.is_file():
                    _download(pinned, target, what, say, timeout)
        except WaitTimeout as exc:
            raise DownloadError(str(exc)) from None
    verify(target, pinned.sha256, what)
    return target


def _download(pinned: Pinned, target: Path, what: str, say: Callable[[str], None], timeout: float) -> None:
    say(f"downloading {what} (once; cached in {target.parent})")
    handle, partial = tempfile.mkstemp(prefix=f".{pinned.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                with requests.get(pinned.url, stream=True, timeout=(30, timeout)) as response:
                    response.raise_for_status()
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
            except requests.RequestException as exc:
                raise DownloadError(f"downloading {what} failed: {exc}") from None
        verify(Path(partial), pinned.sha256, what)
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
