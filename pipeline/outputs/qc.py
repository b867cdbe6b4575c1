"""QC pictures: axial slices and a coronal view with lung and lesion overlays, plus a cohort index page.

Colours: right lung outline green, left lung outline blue, ground-glass opacity yellow,
consolidation red (filled, semi-transparent). The CT is shown in a lung window
(level -600 HU, width 1500 HU), in radiological convention (patient right on the image left,
anterior up; coronal: superior up).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.io.atomic import atomic_path, write_text_atomic
from segmentation.result import LesionLabel, LungLabel, LungSegmentation

LUNG_WINDOW = (-1350.0, 150.0)
N_AXIAL = 4
COLORS = {
    "right": "#1b9e77",
    "left": "#377eb8",
    "ggo": "#ffd92f",
    "consolidation": "#e41a1c",
}
THUMBNAIL_WIDTH = 480


def _lps_array(image: sitk.Image) -> np.ndarray:
    """Array (z, y, x) with indices increasing towards patient Left, Posterior, Superior."""
    return sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))


def _axial_indices(lungs: np.ndarray, n: int) -> list[int]:
    """``n`` slice indices spread over the lungs' cranio-caudal extent (the volume's if no lung)."""
    rows = np.flatnonzero(lungs.any(axis=(1, 2)))
    low, high = (int(rows[0]), int(rows[-1])) if rows.size else (0, lungs.shape[0] - 1)
    fractions = np.linspace(0.15, 0.85, n)
    # Shown from superior to inferior, as a radiologist scrolls.
    return sorted({int(round(low + f * (high - low))) for f in fractions}, reverse=True)


def _coronal_index(lungs: np.ndarray) -> int:
    """The coronal plane (y index) through the middle of the lungs."""
    cols = np.flatnonzero(lungs.any(axis=(0, 2)))
    if cols.size == 0:
        return lungs.shape[1] // 2
    return int((cols[0] + cols[-1]) // 2)


def _overlay(ax, ct: np.ndarray, lungs: np.ndarray, lesions: np.ndarray, *, aspect: float, lower: bool) -> None:  # noqa: ANN001
    from matplotlib.colors import ListedColormap

    origin = "lower" if lower else "upper"
    ax.imshow(
        ct,
        cmap="gray",
        vmin=LUNG_WINDOW[0],
        vmax=LUNG_WINDOW[1],
        aspect=aspect,
        origin=origin,
        interpolation="bilinear",
    )
    for label, color in ((LesionLabel.GGO, COLORS["ggo"]), (LesionLabel.CONSOLIDATION, COLORS["consolidation"])):
        mask = np.ma.masked_where(lesions != label, np.ones_like(lesions, dtype=np.uint8))
        ax.imshow(mask, cmap=ListedColormap([color]), alpha=0.5, aspect=aspect, origin=origin, interpolation="nearest")
    for label, color in ((LungLabel.RIGHT_LUNG, COLORS["right"]), (LungLabel.LEFT_LUNG, COLORS["left"])):
        mask = (lungs == label).astype(np.uint8)
        if mask.any():
            # No ``origin`` here: contour's default puts mask[0, 0] at data (0, 0), where imshow
            # puts pixel [0, 0] whichever its origin ("upper" would flip the outline vertically).
            ax.contour(mask, levels=[0.5], colors=[color], linewidths=0.9)
    ax.set_axis_off()


@dataclass(frozen=True)
class QCPicture:
    """Paths of a scan's QC picture and its thumbnail."""

    picture: Path
    thumbnail: Path


def thumbnail_path(picture: Path) -> Path:
    """Where :func:`render_qc` puts the thumbnail of ``picture``: ``<stem>_thumb.png`` beside it."""
    picture = Path(picture)
    return picture.with_name(f"{picture.stem}_thumb.png")


def render_qc(
    ct: sitk.Image,
    segmentation: LungSegmentation,
    *,
    caption: str,
    destination: Path,
) -> QCPicture:
    """Render the QC picture of one scan to ``destination`` (PNG) and a thumbnail beside it.

    Parameters
    ----------
    ct
        The CT volume in HU.
    segmentation
        Lung and lesion labels on the CT grid.
    caption
        Text printed under the images (key numbers of the scan; no patient identifiers
        unless the caller put pseudonymised ones in).
    destination
        Output PNG; the thumbnail is ``<stem>_thumb.png`` in the same folder.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from PIL import Image

    ct_arr = _lps_array(ct).astype(np.float32)
    lungs = _lps_array(segmentation.lungs)
    lesions = _lps_array(segmentation.lesions)
    sx, sy, sz = sitk.DICOMOrient(ct, "LPS").GetSpacing()

    axial = _axial_indices(lungs, N_AXIAL)
    coronal = _coronal_index(lungs)
    fig = plt.figure(figsize=(4 * (len(axial) + 1.3), 5.2), dpi=100)
    try:
        grid = fig.add_gridspec(1, len(axial) + 1, width_ratios=[1] * len(axial) + [1.3], wspace=0.02)
        for column, k in enumerate(axial):
            ax = fig.add_subplot(grid[0, column])
            _overlay(ax, ct_arr[k], lungs[k], lesions[k], aspect=sy / sx, lower=False)
            ax.set_title(f"axial {k + 1}/{ct_arr.shape[0]}", fontsize=9)
        ax = fig.add_subplot(grid[0, len(axial)])
        _overlay(ax, ct_arr[:, coronal, :], lungs[:, coronal, :], lesions[:, coronal, :], aspect=sz / sx, lower=True)
        ax.set_title("coronal", fontsize=9)
        legend = [
            Line2D([0], [0], color=COLORS["right"], label="right lung"),
            Line2D([0], [0], color=COLORS["left"], label="left lung"),
            Patch(color=COLORS["ggo"], alpha=0.6, label="GGO"),
            Patch(color=COLORS["consolidation"], alpha=0.6, label="consolidation"),
        ]
        fig.legend(handles=legend, loc="lower right", ncol=4, fontsize=9, frameon=False)
        fig.text(0.01, 0.02, caption, fontsize=10, family="monospace", va="bottom")
        fig.subplots_adjust(left=0.005, right=0.995, top=0.93, bottom=0.12)

        destination = Path(destination)
        thumbnail = thumbnail_path(destination)
        with atomic_path(destination) as tmp:
            fig.savefig(tmp, format="png", facecolor="white")
    finally:
        plt.close(fig)  # also when drawing or writing fails: a worker renders many scans
    with Image.open(destination) as picture:
        ratio = THUMBNAIL_WIDTH / picture.width
        small = picture.resize((THUMBNAIL_WIDTH, max(1, round(picture.height * ratio))), Image.Resampling.LANCZOS)
        with atomic_path(thumbnail) as tmp:
            small.save(tmp, format="PNG", optimize=True)
    return QCPicture(picture=destination, thumbnail=thumbnail)


@dataclass(frozen=True)
class QCEntry:
    """One scan on the cohort QC page."""

    title: str
    picture: Path
    thumbnail: Path
    numbers: Sequence[tuple[str, str]]
    status: str = "ok"


def write_qc_index(entries: Sequence[QCEntry], *, destination: Path, title: str = "lunglesion QC") -> Path:
    """Write ``qc/index.html``: every scan's thumbnail (linking to the full picture) and numbers."""
    destination = Path(destination)
    base = destination.parent
    cards = []
    for entry in entries:
        numbers = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>" for name, value in entry.numbers
        )
        if Path(entry.thumbnail).is_file():
            picture = html.escape(_relative(entry.picture, base))
            thumb = html.escape(_relative(entry.thumbnail, base))
            shown = f'<a href="{picture}"><img src="{thumb}" alt="QC picture" loading="lazy"></a>'
        else:  # a failed scan has no picture
            shown = "<p>no QC picture</p>"
        cards.append(
            f'<div class="card {html.escape(entry.status)}"><h2>{html.escape(entry.title)}</h2>'
            f"{shown}<table>{numbers}</table></div>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; background: #f4f4f4; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.card {{ background: white; padding: 8px; border-radius: 6px; width: {THUMBNAIL_WIDTH}px; box-shadow: 0 1px 3px #999; }}
.card.failed {{ background: #fde0dc; }}
.card h2 {{ font-size: 14px; margin: 0 0 6px 0; word-break: break-all; }}
.card img {{ width: 100%; }}
table {{ font-size: 12px; border-collapse: collapse; width: 100%; }}
th {{ text-align: left; font-weight: normal; color: #555; }} td {{ text-align: right; }}
</style></head>
<body><h1>{html.escape(title)}</h1><p>{len(entries)} scan(s). Click a picture to open it full size.
Right lung green, left lung blue, GGO yellow, consolidation red.</p>
<div class="grid">
{chr(10).join(cards)}
</div></body></html>
"""
    write_text_atomic(destination, page)
    return destination


def _relative(path: Path, base: Path) -> str:
    import os

    return Path(os.path.relpath(Path(path), base)).as_posix()
