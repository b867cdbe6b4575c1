"""Atomic file writes: a reader sees the old file or the complete new one, never half of it.

Each writer writes to a temporary file in the destination folder, flushes it to disk,
then renames it over the destination (``os.replace`` is atomic on POSIX and Windows
within one file system). A process killed mid-write leaves only a ``.tmp-*`` file,
which the next run removes with :func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``destination`` if the block succeeds.

    The temporary name keeps the destination's suffixes (``x.nii.gz`` -> ``.tmp-abc-x.nii.gz``)
    so that libraries choosing a format by suffix (SimpleITK, matplotlib) still work.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=f"-{destination.name}", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, destination)
        _fsync_dir(destination.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(
    destination: Path, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO]:
    """Open a temporary file for writing; it atomically becomes ``destination`` on success."""
    if "b" in mode:
        encoding = None
    with atomic_path(destination) as tmp, open(tmp, mode, encoding=encoding, newline=newline) as handle:
        yield handle


def write_text_atomic(destination: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``destination`` atomically."""
    with atomic_open(destination, "w") as handle:
        handle.write(text)


def write_bytes_atomic(destination: Path, data: bytes) -> None:
    """Write ``data`` to ``destination`` atomically."""
    with atomic_open(destination, "wb") as handle:
        handle.write(data)


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporaries left by killed writers under ``root``; return how many."""
    removed = 0
    for tmp in Path(root).rglob(f"{TMP_PREFIX}*"):
        if tmp.is_file():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
    return removed


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
