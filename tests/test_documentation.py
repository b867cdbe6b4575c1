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
    # Dask's own configuration (for the workers of an existing cluster) is not a lunglesion overlay.
    blocks = [block for block in blocks if not block.lstrip().startswith("distributed:")]
    assert blocks, "the README should show a --config example"
    for number, block in enumerate(blocks):
        overlay = tmp_path / f"example{number}.yaml"
        overlay.write_text(block, encoding="utf-8")
        assert yaml.safe_load(block)
        load_settings(overlay)  # raises ConfigError if the example is wrong


def test_readme_cohort_example_is_a_valid_cohort_file(tmp_path):
    from pipeline.cohort import read_cohort

    blocks = re.findall(r"```csv\n(.*?)```", README, flags=re.S)
    assert blocks, "the README should show a cohort file"
    for number, block in enumerate(blocks):
        path = tmp_path / f"cohort{number}.csv"
        path.write_text(block, encoding="utf-8")
        cohort = read_cohort(path)  # raises LunglesionError(COHORT_INVALID) if the example is wrong
        assert cohort.patient_ids
        if "C3N-00247" in block:
            assert cohort.dicom_ids["C3N-00247"] == "P01"


def test_relative_links_of_the_documents_resolve():
    documents = [ROOT / "README.md", ROOT / "segmentation" / "MODEL_CARD.md", ROOT / "metrics" / "README.md"]
    broken = []
    for document in documents:
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" not in target and not (document.parent / target).exists():
                broken.append(f"{document.relative_to(ROOT)} -> {target}")
    assert not broken, f"links to missing files: {broken}"
