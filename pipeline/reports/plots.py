"""Trajectory plots: one per patient and one for the whole cohort (matplotlib, Agg, no display).

Only measured (status ok), dated scans can be drawn; what is left out is counted in a note
under the plot. Without infusions the x axis is days from the patient's first scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from metrics.settings import TimepointSettings
from metrics.timestamps import EventTime, days_between
from metrics.vocabulary import Response, ScanStatus
from pipeline.io.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from pipeline.reports.linking import PatientTables

# Okabe-Ito colour-blind-safe colours.
_LESION, _GGO, _CONSOLIDATION = "#000000", "#0072B2", "#D55E00"
_RESPONSE_COLOUR = {
    Response.IMPROVED.value: "#009E73",
    Response.STABLE.value: "#999999",
    Response.WORSENED.value: "#CC0000",
}
_SERIES = (
    ("lesion_pct", "lesion (GGO + consolidation)", _LESION, "o", "-"),
    ("ggo_pct", "GGO", _GGO, "s", "--"),
    ("consolidation_pct", "consolidation", _CONSOLIDATION, "^", ":"),
)
_DPI = 100


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(figure: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=_DPI, metadata={"Software": None})
    return path


def _footnote(figure: Figure, text: str) -> None:
    """A note under the plot, placed by the constrained layout (never over the axis labels)."""
    figure.supxlabel(text, x=0.01, ha="left", fontsize=8, color="#555555")


def _x_origin(patient: PatientTables) -> tuple[EventTime | None, str]:
    if patient.infusions:
        return min(patient.infusions), "days from first infusion"
    dated = [r["scan_datetime"] for r in patient.scan_rows if r.get("scan_datetime") is not None]
    if dated:
        return min(dated), "days from first scan (no infusions known)"  # type: ignore[type-var,return-value]
    return None, "days"


def _plotted(patient: PatientTables) -> tuple[list[Mapping[str, object]], dict[str, int]]:
    """Rows that can be drawn, and counts of those that cannot."""
    shown, left_out = [], {"failed": 0, "without date": 0}
    for row in patient.scan_rows:
        if row.get("status") != ScanStatus.OK.value:
            left_out["failed"] += 1
        elif row.get("scan_datetime") is None:
            left_out["without date"] += 1
        else:
            shown.append(row)
    return shown, left_out


def _days(row: Mapping[str, object], origin: EventTime) -> float:
    moment = row["scan_datetime"]
    assert isinstance(moment, EventTime)
    return days_between(moment, origin)


def _draw_infusions(axes: Axes, patient: PatientTables, origin: EventTime) -> None:
    for dose, infusion in enumerate(sorted(patient.infusions), start=1):
        x = days_between(infusion, origin)
        axes.axvline(x, color="#7F7F7F", linestyle=(0, (4, 3)), linewidth=1.0, zorder=1)
        axes.annotate(
            f"dose {dose}",
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="#555555",
        )


def plot_patient(patient: PatientTables, path: Path) -> Path:
    """``patients/<patient>_trajectory.png``: lesion, GGO and consolidation % over time."""
    figure = _new_figure(8.0, 4.5)
    axes = figure.add_subplot()
    origin, x_label = _x_origin(patient)
    shown, left_out = _plotted(patient)
    top = 5.0
    if origin is not None:
        _draw_infusions(axes, patient, origin)
        primary = [r for r in shown if r.get("timepoint_primary")]
        duplicates = [r for r in shown if not r.get("timepoint_primary")]
        for column, label, colour, marker, style in _SERIES:
            points = [(_days(r, origin), r[column]) for r in primary if r.get(column) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                axes.plot(
                    xs,
                    ys,
                    color=colour,
                    marker=marker,
                    linestyle=style,
                    linewidth=1.8,
                    markersize=6,
                    label=label,
                    zorder=3,
                )
                top = max(top, *ys)  # type: ignore[arg-type]
        extra = [(_days(r, origin), r["lesion_pct"]) for r in duplicates if r.get("lesion_pct") is not None]
        if extra:
            xs, ys = zip(*extra, strict=True)
            axes.plot(
                xs,
                ys,
                linestyle="none",
                marker="o",
                markerfacecolor="none",
                markeredgecolor=_LESION,
                markersize=8,
                label="lesion, duplicate series",
                zorder=3,
            )
        for row in primary:
            response = row.get("response")
            if response and row.get("lesion_pct") is not None:
                axes.annotate(
                    str(response),
                    (_days(row, origin), row["lesion_pct"]),
                    xytext=(0, 8),  # type: ignore[arg-type]
                    textcoords="offset points",
                    ha="center",
                    fontsize=8,
                    color=_RESPONSE_COLOUR.get(str(response), "#333333"),
                )
        baseline = next((r for r in primary if r.get("phase") == "baseline"), None)
        if baseline is not None and baseline.get("lesion_pct") is not None:
            axes.plot(
                [_days(baseline, origin)],
                [baseline["lesion_pct"]],
                linestyle="none",
                marker="*",
                markersize=16,
                color="#E69F00",
                markeredgecolor=_LESION,
                label="baseline",
                zorder=4,
            )
    else:
        axes.text(0.5, 0.5, "no dated, measured scans", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylim(0, min(100.0, top * 1.15) if top < 87 else 100.0)
    axes.set_xlabel(x_label)
    axes.set_ylabel("% of lung volume")
    axes.set_title(f"{patient.file_stem}: lesion burden over time")
    axes.grid(True, color="#E5E5E5", linewidth=0.6, zorder=0)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper right", fontsize=8, frameon=True)
    notes = [f"{n} {what} not shown" for what, n in left_out.items() if n]
    if notes:
        _footnote(figure, "; ".join(notes))
    return _save(figure, path)


def plot_cohort(patients: Sequence[PatientTables], path: Path, *, settings: TimepointSettings) -> Path:
    """``cohort_trajectories.png``: every patient's lesion % and its change from baseline."""
    from matplotlib import colormaps

    figure = _new_figure(11.0, 4.8)
    left, right = figure.subplots(1, 2)
    palette = colormaps["tab10" if len(patients) <= 10 else "tab20"]
    without_infusions = 0
    for index, patient in enumerate(patients):
        if not patient.infusions:
            without_infusions += 1
            continue
        origin = min(patient.infusions)
        shown, _ = _plotted(patient)
        rows = [r for r in shown if r.get("timepoint_primary") and r.get("lesion_pct") is not None]
        if not rows:
            continue
        colour = palette(index % palette.N)
        xs = [_days(r, origin) for r in rows]
        left.plot(
            xs,
            [r["lesion_pct"] for r in rows],
            marker="o",
            markersize=4,
            linewidth=1.4,
            color=colour,
            label=patient.file_stem,
        )
        changes = [
            (x, r["delta_lesion_pct"]) for x, r in zip(xs, rows, strict=True) if r.get("delta_lesion_pct") is not None
        ]
        if changes:
            cx, cy = zip(*changes, strict=True)
            right.plot(cx, cy, marker="o", markersize=4, linewidth=1.4, color=colour)
        for r in rows:
            if r.get("phase") == "baseline":
                left.plot(
                    [_days(r, origin)],
                    [r["lesion_pct"]],
                    marker="*",
                    markersize=11,
                    color=colour,
                    markeredgecolor="#000000",
                    linestyle="none",
                )
    threshold = settings.response.absolute_threshold_pp
    for axes in (left, right):
        axes.axvline(0.0, color="#7F7F7F", linestyle=(0, (4, 3)), linewidth=1.0)
        axes.set_xlabel("days from first infusion")
        axes.grid(True, color="#E5E5E5", linewidth=0.6)
    right.axhspan(
        -threshold, threshold, color="#DDDDDD", alpha=0.6, label=f"±{threshold:g} pp (absolute response threshold)"
    )
    right.axhline(0.0, color="#000000", linewidth=0.8)
    left.set_ylabel("lesion, % of lung volume")
    left.set_ylim(bottom=0)
    left.set_title("lesion burden (★ baseline)")
    right.set_ylabel("change from baseline, percentage points")
    right.set_title("change of lesion % from baseline")
    right.legend(loc="best", fontsize=8)
    if 0 < len(patients) <= 12 and left.get_legend_handles_labels()[0]:
        left.legend(loc="upper right", fontsize=8, ncols=2 if len(patients) > 6 else 1)
    if without_infusions:
        _footnote(figure, f"{without_infusions} patient(s) without infusion dates not shown")
    return _save(figure, path)
