"""Per-scan result files: label masks as NIfTI, DICOM SEG, QC pictures."""
