"""The cohort file: treatment events per patient, read and validated into a :class:`Cohort`.

Public API: :func:`read_cohort` (``pipeline.cohort.reader``) and the types of
``pipeline.cohort.model``; the file format is documented in ``metrics/README.md``.
"""

from pipeline.cohort.model import Cohort, CohortEvent, ReservedEvent, ScanOverride
from pipeline.cohort.reader import read_cohort

__all__ = ["Cohort", "CohortEvent", "ReservedEvent", "ScanOverride", "read_cohort"]
