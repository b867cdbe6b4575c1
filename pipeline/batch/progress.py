"""Progress of a batch run: a live bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

log = logging.getLogger(__name__)


class Progress:
    """Counts finished and failed scans; shows them with an ETA.

    On a terminal (stderr is a TTY) a rich progress bar is drawn; elsewhere (batch
    schedulers, CI, pipes) one log line is written per finished scan.
    """

    def __init__(self, total: int, *, live: bool | None = None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.skipped = 0
        self._start = time.monotonic()
        self._live = sys.stderr.isatty() if live is None else live
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        if self._live and self.total:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]scans"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[summary]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("scans", total=self.total, summary=self._summary())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed - self.skipped

    def _summary(self) -> str:
        return f"done {self.done}  failed {self.failed}  reused {self.skipped}  remaining {self.remaining}"

    def eta_seconds(self) -> float | None:
        """Estimated seconds left, from the mean time of the scans computed so far."""
        computed = self.done + self.failed
        if computed == 0:
            return None
        return (time.monotonic() - self._start) / computed * self.remaining

    def update(self, *, scan_id: str, status: str, seconds: float | None = None, reused: bool = False) -> None:
        """Record one finished scan (``status`` is ``ok`` or ``failed``)."""
        if reused:
            self.skipped += 1
        elif status == "ok":
            self.done += 1
        else:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, summary=self._summary())
            return
        eta = self.eta_seconds()
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        eta_text = f", ETA {eta:.0f} s" if eta is not None and self.remaining else ""
        what = "reused" if reused else status
        log.info("scan %s %s%s (%s%s)", scan_id, what, took, self._summary(), eta_text)
