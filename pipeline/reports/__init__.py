"""Per-scan, per-patient and cohort tables and plots, rebuilt from per-scan records.

Public API::

    from pipeline.reports import scan_record, write_reports
    record = scan_record(scan.meta, metrics=m, status=ScanStatus.OK, ...)   # one per scan
    paths = write_reports(records, cohort=cohort, settings=settings.timepoints, out_dir=out)
"""

from pipeline.reports.records import load_scan_records, scan_record
from pipeline.reports.writer import ReportPaths, write_reports

__all__ = ["ReportPaths", "load_scan_records", "scan_record", "write_reports"]
