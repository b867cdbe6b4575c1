"""Atomic writes: the destination is the old file or the complete new one, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from pipeline.io.atomic import TMP_PREFIX, atomic_path, remove_stale_temporaries, write_text_atomic


@pytest.fixture
def umask_027():
    import pipeline.io.atomic as atomic

    old = os.umask(0o027)
    yield
    os.umask(old)
    atomic._umask.cache_clear()  # the next writer reads the restored umask


def test_written_files_get_the_umask_permissions_not_owner_only(tmp_path, umask_027):
    import pipeline.io.atomic as atomic

    atomic._umask.cache_clear()  # read again under this test's umask
    target = tmp_path / "scans.csv"
    write_text_atomic(target, "a,b\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o640


def test_a_failed_block_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_the_tag_names_the_temporary_and_suffixes_are_kept(tmp_path):
    target = tmp_path / "dseg.tsv"
    with atomic_path(target, tag="acq-1a2b3c") as tmp:
        assert tmp.name.startswith(TMP_PREFIX)
        assert tmp.name.endswith("-acq-1a2b3c-dseg.tsv")
        tmp.write_text("index\n")
    assert target.read_text() == "index\n"
    leftover = tmp_path / f"{TMP_PREFIX}zz-x.nii.gz"
    leftover.write_text("")
    assert remove_stale_temporaries(tmp_path) == 1
