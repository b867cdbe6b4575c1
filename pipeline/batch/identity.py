"""Who a scan belongs to in the outputs: cohort resolution and optional pseudonymisation.

Without ``--pseudonymize``, records keep the DICOM PatientID and file names use the patient ID
the cohort file resolves the scan to (its ``dicom_patient_id`` mapping or ``scan`` rows), so a
study's own pseudonymous IDs (``P01``) name the files.

With ``--pseudonymize SECRET_FILE`` every patient identifier, DICOM or cohort, is replaced by
its keyed hash (HMAC-SHA256 with the secret) before anything is written: records, cohort
mapping, file names, QC captions, the DICOM SEG patient module. Free text that may contain an
identifier (file paths, messages) goes through :meth:`PatientIdentity.redact`.
"""

from __future__ import annotations

from dataclasses import replace

from pipeline.cohort.model import Cohort, ScanOverride
from pipeline.ingest.candidate import SeriesCandidate
from pipeline.privacy import Pseudonymizer, replace_identifiers, safe_path_component
from pipeline.reports.linking import resolve_patient


class PatientIdentity:
    """Maps raw patient identifiers to what the outputs show."""

    def __init__(self, *, cohort: Cohort | None, pseudonymizer: Pseudonymizer | None) -> None:
        self._cohort = cohort
        self._pseudonymizer = pseudonymizer
        self._raw: set[str] = set()
        if cohort is not None:
            self._raw.update(cohort.patient_ids)
            self._raw.update(cohort.dicom_ids)

    @property
    def pseudonymized(self) -> bool:
        return self._pseudonymizer is not None

    def _out(self, raw: str) -> str:
        if self._pseudonymizer is None or not raw:
            return raw
        self._raw.add(raw)
        return self._pseudonymizer(raw)

    def record_patient_id(self, dicom_patient_id: str) -> str:
        """The ``patient_id`` written into a scan's record."""
        return self._out(dicom_patient_id)

    def _resolved(self, candidate: SeriesCandidate) -> str:
        self._raw.add(candidate.patient_id)
        resolved, _ = resolve_patient(
            {"patient_id": candidate.patient_id, "series_uid": candidate.series_uid, "study_uid": candidate.study_uid},
            self._cohort,
        )
        return resolved

    def subject(self, candidate: SeriesCandidate) -> str:
        """The patient a scan belongs to after cohort resolution, as shown in outputs."""
        return self._out(self._resolved(candidate))

    def scan_redactions(self, candidate: SeriesCandidate) -> tuple[tuple[str, str], ...]:
        """(raw, pseudonym) pairs of one scan's identifiers, for its worker's messages."""
        if self._pseudonymizer is None:
            return ()
        raws = {candidate.patient_id, self._resolved(candidate)} - {""}
        return tuple((raw, self._out(raw)) for raw in sorted(raws))

    def subject_label(self, candidate: SeriesCandidate) -> str:
        """A file-name-safe label of :meth:`subject`."""
        return safe_path_component(self.subject(candidate), fallback="unknown")

    def cohort(self) -> Cohort | None:
        """The cohort as the report builder should see it (identifiers replaced when pseudonymising)."""
        cohort = self._cohort
        if cohort is None or self._pseudonymizer is None:
            return cohort
        out = self._out
        return Cohort(
            events=tuple(replace(event, patient_id=out(event.patient_id)) for event in cohort.events),
            patient_ids=tuple(sorted(out(p) for p in cohort.patient_ids)),
            series_overrides={k: _override(v, out) for k, v in cohort.series_overrides.items()},
            study_overrides={k: _override(v, out) for k, v in cohort.study_overrides.items()},
            dicom_ids={out(dicom): out(patient) for dicom, patient in cohort.dicom_ids.items()},
        )

    def redact(self, text: str) -> str:
        """Replace every known raw identifier in ``text`` by its pseudonym (no-op without pseudonyms)."""
        if self._pseudonymizer is None or not text:
            return text
        return replace_identifiers(text, ((raw, self._pseudonymizer(raw)) for raw in self._raw if raw))


def _override(override: ScanOverride, out) -> ScanOverride:  # noqa: ANN001 - the mapping function
    return replace(override, patient_id=out(override.patient_id))
