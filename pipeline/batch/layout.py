"""Where a run puts each file. Every name built from patient data goes through ``safe_path_component``.

::

    OUT/
      run.json                 provenance of the last run
      index.csv                every series found, selected or not, and why
      skipped_files.csv        files that are not part of any series (not DICOM, truncated, ...)
      errors.csv               everything that failed: files, studies without a usable series, scans
      scans.csv, cohort_summary.csv, cohort_trajectories.png, patients/   (see pipeline.reports)
      masks/sub-<id>/ses-<date>/<stem>_desc-lunglesion_dseg.nii.gz (+ dseg.tsv, the label table)
      seg/sub-<id>/ses-<date>/<stem>_seg.dcm
      qc/index.html, qc/<stem>.png, qc/<stem>_thumb.png
      scans/<scan_id>/result.json, scans/<scan_id>/done.json   (per-scan state for resuming)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.batch.outputs import OutputFormat
from pipeline.outputs.nifti import bids_stem, mask_path
from pipeline.outputs.qc import thumbnail_path

RUN_JSON = "run.json"
INDEX_CSV = "index.csv"
SKIPPED_CSV = "skipped_files.csv"
ERRORS_CSV = "errors.csv"
STATE_DIR = "scans"
RESULT_JSON = "result.json"
DONE_JSON = "done.json"
MASKS_DIR = "masks"
SEG_DIR = "seg"
QC_DIR = "qc"


@dataclass(frozen=True)
class ScanPaths:
    """Every file of one scan under the output folder."""

    state_dir: Path
    result_json: Path
    done_json: Path
    mask_dir: Path
    seg_file: Path
    qc_picture: Path
    stem: str

    @classmethod
    def build(cls, out_dir: Path, *, scan_id: str, subject: str, session: str) -> ScanPaths:
        """Paths for ``scan_id``; ``subject`` and ``session`` must already be safe labels."""
        stem = bids_stem(subject=subject, session=session, acquisition=scan_id)
        sub = stem.split("_")[0]
        ses = stem.split("_")[1]
        state = out_dir / STATE_DIR / scan_id
        return cls(
            state_dir=state,
            result_json=state / RESULT_JSON,
            done_json=state / DONE_JSON,
            mask_dir=out_dir / MASKS_DIR / sub / ses,
            seg_file=out_dir / SEG_DIR / sub / ses / f"{stem}_seg.dcm",
            qc_picture=out_dir / QC_DIR / f"{stem}.png",
            stem=stem,
        )

    @property
    def qc_thumbnail(self) -> Path:
        return thumbnail_path(self.qc_picture)

    def _outputs(self) -> tuple[tuple[OutputFormat, Path], ...]:
        """Each per-scan output file with the format that writes it."""
        return (
            (OutputFormat.NIFTI, mask_path(self.mask_dir, self.stem)),
            (OutputFormat.SEG, self.seg_file),
            (OutputFormat.QC, self.qc_picture),
            (OutputFormat.QC, self.qc_thumbnail),
        )

    def every_output_file(self) -> list[Path]:
        """Every per-scan output file a run may have written for this scan (any format)."""
        return [path for _, path in self._outputs()]

    def output_files(self, formats: tuple[OutputFormat, ...], *, dicom_source: bool) -> list[Path]:
        """The per-scan files that ``formats`` ask for (no DICOM SEG for a volume-file source)."""
        return [
            path for fmt, path in self._outputs() if fmt in formats and (dicom_source or fmt is not OutputFormat.SEG)
        ]
