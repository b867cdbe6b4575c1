"""Which backgrounds the training cache is built from: hold-out, shares, phantoms."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from segmentation.synth.backgrounds import CHESTS, EXTRAS, training_sources
from segmentation.synth.phantom_backgrounds import DEMO_SEEDS, is_phantom, phantom_background
from segmentation.synth.targets import Targets
from segmentation.training.cache import CASES_PER_PHANTOM, assign_backgrounds, cache_key


@pytest.mark.parametrize("holdout", CHESTS)
def test_the_held_out_chest_never_trains(holdout):
    names = assign_backgrounds(240, holdout)
    assert len(names) == 240
    assert holdout not in names
    other = next(c for c in CHESTS if c != holdout)
    assert other in names
    assert holdout not in {s.name for s in training_sources(holdout)}


def test_shares_and_contiguity():
    names = assign_backgrounds(240, "dlwpt")
    counts = Counter(names)
    phantoms = [n for n in names if is_phantom(n)]
    # About a quarter synthetic thoraxes, each anatomy used for at most CASES_PER_PHANTOM cases.
    assert 0.2 < len(phantoms) / len(names) < 0.3
    assert max(counts[n] for n in set(phantoms)) == CASES_PER_PHANTOM
    # The complete real chest is the largest single source.
    assert counts.most_common(1)[0][0] == "popi"
    # Cases of one background are contiguous (the cache keeps one background in memory).
    changes = sum(1 for a, b in zip(names, names[1:], strict=False) if a != b)
    assert changes == len(counts) - 1


def test_cache_key_depends_on_the_holdout():
    from segmentation.training.run import DEFAULT_PREPROCESSING

    assert cache_key(DEFAULT_PREPROCESSING, 240, 0, "dlwpt") != cache_key(DEFAULT_PREPROCESSING, 240, 0, "popi")


def test_cache_key_depends_on_the_findings_of_training_backgrounds(monkeypatch):
    import dataclasses

    import segmentation.synth.backgrounds as backgrounds
    from segmentation.training.run import DEFAULT_PREPROCESSING

    before = {h: cache_key(DEFAULT_PREPROCESSING, 240, 0, h) for h in CHESTS}
    # The shipped model's cache (dlwpt held out) was built before findings existed: its key must not move.
    assert before["dlwpt"] == "ae57d0233d31"
    mass = backgrounds.Finding("test", (0.0, 0.0, 0.0), 10.0)
    changed = tuple(dataclasses.replace(s, findings=(mass,)) if s.name == "popi" else s for s in backgrounds.SOURCES)
    monkeypatch.setattr(backgrounds, "SOURCES", changed)
    assert cache_key(DEFAULT_PREPROCESSING, 240, 0, "dlwpt") != before["dlwpt"]  # popi now trains with a finding


def test_cache_key_depends_on_the_target_rule():
    from segmentation.training.run import DEFAULT_PREPROCESSING

    # The opacity rule keeps the key of the cache lunglesion-seg-v1 and -v2 were trained on (popi's
    # nodule is declared for the visible rule only); the visible rule gets its own cache.
    assert cache_key(DEFAULT_PREPROCESSING, 240, 0, "dlwpt", Targets.OPACITY) == "ae57d0233d31"
    assert cache_key(DEFAULT_PREPROCESSING, 240, 0, "dlwpt", Targets.VISIBLE) != "ae57d0233d31"


def test_extra_backgrounds_train_only_when_named():
    from segmentation.training.run import DEFAULT_PREPROCESSING

    assert EXTRAS == ("nsclc-2", "nsclc-3", "nsclc-4")
    standard = [s.name for s in training_sources("dlwpt")]
    assert not set(EXTRAS) & set(standard)
    assert [s.name for s in training_sources("dlwpt", ("nsclc-3",))] == [*standard, "nsclc-3"]
    with pytest.raises(ValueError, match="unknown extra backgrounds"):
        training_sources("dlwpt", ("cip-64",))  # a check, never a training background
    names = assign_backgrounds(240, "dlwpt", EXTRAS)
    counts = Counter(names)
    assert len(names) == 240 and all(counts[name] >= 10 for name in EXTRAS)
    assert counts["popi"] < Counter(assign_backgrounds(240, "dlwpt"))["popi"]
    # Without extras the keys of the shipped caches stay (stage 4 trained on train-5c610f614c61).
    assert cache_key(DEFAULT_PREPROCESSING, 240, 0, "dlwpt", Targets.VISIBLE, ()) == "5c610f614c61"
    assert cache_key(DEFAULT_PREPROCESSING, 240, 0, "dlwpt", Targets.VISIBLE, EXTRAS) != "5c610f614c61"


def test_cache_key_depends_on_the_definition_of_the_extra_backgrounds(monkeypatch):
    import dataclasses

    import segmentation.synth.backgrounds as backgrounds
    from segmentation.training.run import DEFAULT_PREPROCESSING

    before = cache_key(DEFAULT_PREPROCESSING, 240, 0, "dlwpt", Targets.VISIBLE, EXTRAS)
    denser = tuple(
        dataclasses.replace(s, unknown_dense_hu=-600.0) if s.name == "nsclc-2" else s for s in backgrounds.SOURCES
    )
    monkeypatch.setattr(backgrounds, "SOURCES", denser)
    assert cache_key(DEFAULT_PREPROCESSING, 240, 0, "dlwpt", Targets.VISIBLE, EXTRAS) != before


def test_phantom_backgrounds_are_reproducible_and_avoid_the_demo(monkeypatch):
    """A phantom is fixed by its name and the seed (built small here: the sampled size is scaled down)."""
    import pipeline.synthetic.thorax as thorax

    seen = []
    original = thorax.build_thorax

    def small(spec):
        seen.append(spec.seed)
        shape = (max(8, spec.shape[0] // 6), max(16, spec.shape[1] // 6), max(16, spec.shape[2] // 6))
        spacing = tuple(s * 6 for s in spec.spacing[:2]) + (spec.spacing[2] * 6,)
        return original(thorax.ThoraxSpec(shape=shape, spacing=spacing, scale=spec.scale, seed=spec.seed))

    monkeypatch.setattr(thorax, "build_thorax", small)
    a = phantom_background("phantom-004", seed=0)
    b = phantom_background("phantom-004", seed=0)
    c = phantom_background("phantom-005", seed=0)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.lungs, b.lungs)
    assert not np.array_equal(a.hu, c.hu) or a.hu.shape != c.hu.shape
    assert set(np.unique(a.lungs)) == {0, 1, 2}
    assert a.hu.min() >= -1024 and a.hu.max() <= 3071
    assert not set(seen) & DEMO_SEEDS
