"""Measurements of lung disease on one scan and over a patient's treatment (pure functions, no file I/O).

Modules (import what you need; ``import metrics`` itself stays light):

* :mod:`metrics.scan` -- :func:`~metrics.scan.measure_scan` -> :class:`~metrics.scan.ScanMetrics`;
  :mod:`metrics.image` -- :func:`~metrics.image.measure_image` for SimpleITK images;
* :mod:`metrics.zones`, :mod:`metrics.severity`, :mod:`metrics.density`, :mod:`metrics.calibration`,
  :mod:`metrics.quality` -- the parts of a scan's measurement;
* :mod:`metrics.timestamps`, :mod:`metrics.timepoints`, :mod:`metrics.summary` -- linking scans to
  treatment events, change from baseline, response, per-patient and cohort summaries;
* :mod:`metrics.columns` -- the one schema of every CSV column; :mod:`metrics.vocabulary` -- the
  words in CSV cells.

Every definition, formula and unit is in ``metrics/README.md``.
"""
