"""Find the files to index under the user's inputs (folders searched recursively, or files)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ErrorCode, IngestError
from pipeline.ingest.settings import IndexSettings

#: Data files that sit next to a MetaImage/NRRD header and are read through it.
_DETACHED_DATA_SUFFIXES = (".raw", ".zraw", ".raw.gz", ".img", ".dat")
_DETACHED_HEADERS = (".mhd", ".nhdr")


@dataclass(frozen=True)
class FoundFiles:
    """Files under the inputs, sorted: DICOM candidates, and volume files with their keys."""

    dicom: tuple[str, ...]
    """Every other file (each may or may not be DICOM: suffixes mean nothing)."""
    volumes: tuple[tuple[str, str], ...]
    """``(path, key)`` of each volume file; ``key`` (hashed into the scan id) is unique: see :func:`find_inputs`."""


def _is_volume(name: str, suffixes: Sequence[str]) -> bool:
    lower = name.lower()
    return any(lower.endswith(suffix) for suffix in suffixes)


def _detached_data(directory: str, names: Sequence[str]) -> set[str]:
    """Names of raw data files that belong to a ``.mhd``/``.nhdr`` header in the same folder."""
    stems = {name.rsplit(".", 1)[0] for name in names if name.lower().endswith(_DETACHED_HEADERS)}
    if not stems:
        return set()
    return {
        name
        for name in names
        for suffix in _DETACHED_DATA_SUFFIXES
        if name.lower().endswith(suffix) and name[: -len(suffix)] in stems
    }


def find_inputs(paths: Sequence[str | Path], *, settings: IndexSettings) -> FoundFiles:
    """Walk the inputs and sort what is found into DICOM candidates and volume files.

    A file named ``DICOMDIR`` given as input stands for the folder that holds it (every file
    there is read directly; the directory records themselves are not needed).

    The key of a volume file is its path relative to the input it was found under (its name,
    for a file given as input), so it does not change when the folder moves. When several
    inputs yield the same key (``patientA/`` and ``patientB/`` both holding ``ct.nii.gz``),
    those keys get the name of the folder holding the input in front (``patientA/ct.nii.gz``,
    the key that indexing their common parent folder gives); keys that still clash become
    the file's resolved absolute path.

    Raises
    ------
    IngestError
        ``INPUT_NOT_FOUND`` naming every input path that does not exist.
    """
    missing = [str(p) for p in paths if not os.path.exists(p)]
    if missing:
        raise IngestError(ErrorCode.INPUT_NOT_FOUND, f"input path not found: {', '.join(missing)}")
    seen: set[str] = set()
    dicom: list[str] = []
    volumes: list[_VolumeFile] = []

    def add(path: str, root: str) -> None:
        real = os.path.realpath(path)
        if real in seen:
            return
        seen.add(real)
        if _is_volume(os.path.basename(path), settings.volume_suffixes):
            anchor = root if root != path else os.path.dirname(path)
            volumes.append(_VolumeFile(path=path, anchor=anchor, real=real))
        else:
            dicom.append(path)

    for given in paths:
        given = os.path.abspath(str(given))
        if os.path.isfile(given) and os.path.basename(given).upper() == "DICOMDIR":
            given = os.path.dirname(given)  # a DICOMDIR names the media folder: index all of it
        if os.path.isfile(given):
            add(given, given)
            continue
        for directory, subdirs, names in os.walk(given, followlinks=settings.follow_symlinks):
            if settings.skip_hidden:
                subdirs[:] = [d for d in subdirs if not d.startswith(".")]
                names = [n for n in names if not n.startswith(".")]
            subdirs.sort()
            detached = _detached_data(directory, names)
            for name in sorted(names):
                if name in detached:
                    continue
                path = os.path.join(directory, name)
                if os.path.isfile(path):
                    add(path, given)
    return FoundFiles(dicom=tuple(sorted(dicom)), volumes=tuple(sorted(_unique_keys(volumes))))


@dataclass(frozen=True)
class _VolumeFile:
    path: str
    anchor: str
    """The folder its key is relative to: the input folder, or the folder of a file given as input."""
    real: str
    """Resolved absolute path (unique among the files found)."""


def _relative_key(path: str, start: str) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def _unique_keys(volumes: Sequence[_VolumeFile]) -> list[tuple[str, str]]:
    """``(path, key)`` per volume file, widening only the keys that several inputs yield."""
    keys = [_relative_key(v.path, v.anchor) for v in volumes]
    clashing = _clashing(keys)
    widened = [key in clashing for key in keys]
    keys = [
        _relative_key(v.path, os.path.dirname(v.anchor)) if wide else key
        for v, key, wide in zip(volumes, keys, widened, strict=True)
    ]
    clashing = _clashing(keys)
    # After widening at most one key of a clash is an original one: it keeps its value.
    keys = [
        v.real.replace(os.sep, "/") if wide and key in clashing else key
        for v, key, wide in zip(volumes, keys, widened, strict=True)
    ]
    return [(v.path, key) for v, key in zip(volumes, keys, strict=True)]


def _clashing(keys: Sequence[str]) -> set[str]:
    counts = Counter(keys)
    return {key for key, n in counts.items() if n > 1}
