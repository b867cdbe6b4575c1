"""Free-text redaction shared by the run's tables and the workers' messages."""

from __future__ import annotations

from pipeline.privacy import replace_identifiers


def test_longer_identifiers_are_replaced_whole_before_their_substrings():
    pairs = [("P1", "sub-a"), ("P12", "sub-b"), ("", "never")]
    assert replace_identifiers("/data/P12/P1.dcm", pairs) == "/data/sub-b/sub-a.dcm"


def test_text_without_identifiers_is_unchanged():
    assert replace_identifiers("no names here", [("P1", "sub-a")]) == "no names here"
