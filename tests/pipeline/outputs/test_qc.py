from pathlib import Path

from PIL import Image

from pipeline.outputs.qc import QCEntry, render_qc, write_qc_index


def test_qc_picture_and_thumbnail_are_written(tmp_path, case):
    ct, seg = case
    result = render_qc(ct, seg, caption="lesion 3.1 %", destination=tmp_path / "qc" / "scan.png")
    with Image.open(result.picture) as picture, Image.open(result.thumbnail) as thumb:
        assert picture.format == "PNG" and thumb.format == "PNG"
        assert picture.width > thumb.width == 480
        # Lesion colours are present: yellow-ish (GGO) and red (consolidation) pixels.
        import numpy as np

        pixels = {tuple(p) for p in np.asarray(picture.convert("RGB")).reshape(-1, 3).tolist()}
    assert any(r > 200 and g > 150 and b < 120 for r, g, b in pixels)
    assert any(r > 180 and g < 90 and b < 90 for r, g, b in pixels)


def test_qc_index_links_every_scan_and_escapes_text(tmp_path):
    qc = tmp_path / "qc"
    entries = [
        QCEntry(title="sub-a <b>", picture=qc / "a.png", thumbnail=qc / "a_thumb.png", numbers=[("lesion %", "1.0")]),
        QCEntry(title="sub-b", picture=qc / "b.png", thumbnail=qc / "b_thumb.png", numbers=[], status="failed"),
    ]
    qc.mkdir()
    (qc / "a_thumb.png").write_bytes(b"")  # the ok scan has its pictures, the failed one none
    page = write_qc_index(entries, destination=qc / "index.html").read_text()
    assert 'href="a.png"' in page and 'src="a_thumb.png"' in page
    assert "b_thumb.png" not in page and "no QC picture" in page  # no broken image for the failed scan
    assert "sub-a &lt;b&gt;" in page and "sub-a <b>" not in page
    assert 'class="card failed"' in page
    assert Path(qc / "index.html").exists()


def test_a_failed_qc_write_leaves_no_open_figure(tmp_path, case):
    import matplotlib.pyplot as plt
    import pytest

    ct, seg = case
    blocker = tmp_path / "qc"
    blocker.write_text("a file where the folder should be")
    before = set(plt.get_fignums())
    with pytest.raises(OSError):
        render_qc(ct, seg, caption="x", destination=blocker / "scan.png")
    assert set(plt.get_fignums()) == before


def test_lung_outlines_lie_over_the_lung_in_both_view_orientations():
    """The outline of a lung in the top rows of a slice is drawn at those rows, not mirrored."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from pipeline.outputs.qc import _overlay

    ct = np.zeros((20, 30), dtype=np.float32)
    lungs = np.zeros((20, 30), dtype=np.uint8)
    lungs[2:6, 4:10] = 1  # rows 2..5 only
    lesions = np.zeros_like(lungs)
    for lower in (False, True):
        fig, ax = plt.subplots()
        _overlay(ax, ct, lungs, lesions, aspect=1.0, lower=lower)
        vertices = np.concatenate([path.vertices for path in ax.collections[-1].get_paths()])
        plt.close(fig)
        # The 0.5 level runs half a pixel outside the mask: rows 1.5..5.5, columns 3.5..9.5.
        assert vertices[:, 1].min() >= 1.5 - 1e-6 and vertices[:, 1].max() <= 5.5 + 1e-6, lower
        assert vertices[:, 0].min() >= 3.5 - 1e-6 and vertices[:, 0].max() <= 9.5 + 1e-6, lower
