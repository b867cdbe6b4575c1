"""Atomic file writes: a reader sees the old file or the complete new one, never half of it.

Each writer writes to a temporary file in the destination folder, flushes it to disk,
then renames it over the destination (``os.replace`` is atomic on POSIX and Windows
within one file system). A process killed mid-write leaves only a ``.tmp-*`` file,
which the next run removes with :func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TMP_PREFIX = ".tmp-"


@functools.cache
def _umask() -> int:
    """The process umask (read once: ``os.umask`` can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            line = next(line for line in status if line.startswith("Umask:"))
        return int(line.split()[1], 8)
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


@contextlib.contextmanager
def atomic_path(destination: Path, *, tag: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``destination`` if the block succeeds.

    The temporary name keeps the destination's suffixes (``x.nii.gz`` -> ``.tmp-abc-x.nii.gz``)
    so that libraries choosing a format by suffix (SimpleITK, matplotlib) still work; ``tag``
    (e.g. the scan id of a writer of a file that several scans share) goes into the name too,
    so that a cleaner can tell whose temporary it is. The file gets the permissions a plain
    ``open`` would give it (``0o666`` less the umask), not ``mkstemp``'s owner-only ``0o600``.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    middle = f"-{tag}" if tag else ""
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=f"{middle}-{destination.name}", dir=destination.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
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


def write_text_atomic(destination: Path, text: str, *, tag: str = "") -> None:
    """Write ``text`` (UTF-8) to ``destination`` atomically (``tag``: see :func:`atomic_path`)."""
    with atomic_path(destination, tag=tag) as tmp, open(tmp, "w", encoding="utf-8") as handle:
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
