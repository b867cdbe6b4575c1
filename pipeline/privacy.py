"""Keeping patient identifiers out of logs and file paths.

Two rules hold everywhere in lunglesion:

* a raw DICOM or cohort value never becomes part of a file path without
  :func:`safe_path_component`;
* log records carry identifiers only in ``extra={"phi": {...}}``, which the log
  formatter prints only when the user passed ``--log-phi`` (see :mod:`pipeline.logs`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_COMPONENT = 64


def short_hash(text: str, *, length: int = 10) -> str:
    """A short, stable, non-reversible hex digest of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def safe_path_component(value: object, *, fallback: str = "unknown") -> str:
    """Turn any value (PatientID, cohort label, date) into one safe file-name component.

    Letters, digits, ``.``, ``_`` and ``-`` are kept; every other run of characters
    becomes ``_``. Leading dots and separators are removed, so the result can never be
    ``.``, ``..``, hidden, absolute or contain a path separator. When characters had to
    be replaced or the value was truncated, a short hash of the original is appended so
    that two different values cannot collide into one name.

    Examples
    --------
    >>> safe_path_component("P01")
    'P01'
    >>> safe_path_component("../../etc/x").startswith("etc_x-")
    True
    """
    text = "" if value is None else str(value)
    cleaned = _UNSAFE.sub("_", text).strip("._-")
    changed = cleaned != text
    if len(cleaned) > _MAX_COMPONENT:
        cleaned = cleaned[:_MAX_COMPONENT].rstrip("._-")
        changed = True
    if not cleaned:
        cleaned = fallback
        changed = bool(text)
    if changed and text:
        cleaned = f"{cleaned}-{short_hash(text, length=8)}"
    return cleaned


def replace_identifiers(text: str, pairs: Iterable[tuple[str, str]]) -> str:
    """Replace each raw identifier of ``pairs`` in ``text`` by its replacement, longest first
    (so an identifier that contains another is replaced whole); empty identifiers are skipped."""
    for raw, replacement in sorted(pairs, key=lambda pair: len(pair[0]), reverse=True):
        if raw:
            text = text.replace(raw, replacement)
    return text


def contained_path(root: Path, *components: str) -> Path:
    """Join sanitised components under ``root`` and check the result stays inside it."""
    path = root.joinpath(*(safe_path_component(c) for c in components))
    resolved_root = root.resolve()
    if resolved_root not in path.resolve().parents and path.resolve() != resolved_root:
        raise ValueError(f"refusing to write outside the output folder: {path}")
    return path


class Pseudonymizer:
    """Replaces patient identifiers by a keyed hash (HMAC-SHA256) of a secret.

    The same secret always gives the same pseudonym, so runs can be resumed and
    merged; without the secret the mapping cannot be recomputed from the IDs.
    """

    def __init__(self, secret: bytes, *, prefix: str = "sub", length: int = 12) -> None:
        if len(secret.strip()) < 16:
            raise ValueError("the pseudonymisation secret must hold at least 16 bytes")
        self._secret = secret.strip()
        self._prefix = prefix
        self._length = length

    @classmethod
    def from_file(cls, path: Path) -> Pseudonymizer:
        """Read the secret from a file (its bytes, surrounding whitespace removed)."""
        return cls(Path(path).read_bytes())

    def __call__(self, identifier: str) -> str:
        digest = hmac.new(self._secret, identifier.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"{self._prefix}{digest[: self._length]}"
