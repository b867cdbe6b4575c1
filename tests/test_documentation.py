"""The README stays in step with the code: error codes, CI command, config example."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipeline.config import load_settings
from pipeline.errors import ErrorCode, WarningCode

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_error_and_warning_code_is_documented():
    missing = [c.value for c in (*ErrorCode, *WarningCode) if f"`{c.value}`" not in README]
    assert not missing, f"README.md does not document: {missing}"


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    command = [line for line in ci if line.strip() and not line.startswith(("#", "set ", "cd "))][-1].strip()
    assert command in README
    assert "pip install torch==2.13.0" in command and "pytest" in command


def test_readme_config_examples_are_valid_overlays(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
    assert blocks, "the README should show a --config example"
    for number, block in enumerate(blocks):
        overlay = tmp_path / f"example{number}.yaml"
        overlay.write_text(block, encoding="utf-8")
        assert yaml.safe_load(block)
        load_settings(overlay)  # raises ConfigError if the example is wrong
