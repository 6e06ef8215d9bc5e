"""Count windows, mergeable bin counts and reference profiles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gateway.monitoring.drift import compute_drift
from gateway.monitoring.profiles import Profile, build_profile
from gateway.monitoring.windows import BinnedCounts, CountWindow


def _names(n: int) -> list[str]:
    return [f"x{i}" for i in range(n)]


def test_ring_wraparound_keeps_the_newest_rows_in_order() -> None:
    rng = np.random.default_rng(0)
    window = CountWindow(capacity=7, n_features=3)
    assert window.view().shape == (0, 3) and window.count == 0
    seen = np.empty((0, 3))
    for size in [0, 2, 3, 1, 4, 6, 7, 1, 5, 9, 2]:
        batch = rng.normal(size=(size, 3))
        window.append(batch)
        seen = np.concatenate([seen, batch])
        np.testing.assert_array_equal(window.view(), seen[-7:])
        assert window.count == min(len(seen), 7)
        assert window.total_seen == len(seen)


def test_big_batch_keeps_its_newest_rows() -> None:
    window = CountWindow(capacity=4, n_features=2)
    window.append(np.ones((3, 2)))
    big = np.arange(20, dtype=float).reshape(10, 2)
    window.append(big)
    np.testing.assert_array_equal(window.view(), big[-4:])
    assert (window.count, window.total_seen) == (4, 13)
    window.append(np.array([100.0, 101.0]))  # a 1-D row
    np.testing.assert_array_equal(window.view()[-1], [100.0, 101.0])
    view = window.view()
    view[:] = 0.0  # a copy: the window is untouched
    assert window.view()[0, 0] == 14.0
    window.clear()
    assert (window.count, window.total_seen, window.view().shape) == (0, 0, (0, 2))
    with pytest.raises(ValueError, match="rows x 2"):
        window.append(np.ones((2, 3)))
    with pytest.raises(ValueError):
        CountWindow(capacity=0, n_features=2)


def _mixed(rng: np.random.Generator, rows: int) -> np.ndarray:
    return np.column_stack(
        [
            rng.normal(size=rows),
            rng.integers(0, 4, size=rows).astype(float),
            np.where(rng.random(rows) < 0.5, 0.0, rng.exponential(size=rows)),
            np.full(rows, 2.5),
        ]
    )


def test_merged_counts_equal_counts_of_the_concatenation() -> None:
    rng = np.random.default_rng(1)
    profile = build_profile(_mixed(rng, 2_000), _names(4))
    batches = [_mixed(rng, n) for n in (1, 50, 333, 1000)]
    batches[2][:40, 0] = np.nan
    batches[3][:7, 2] = np.inf
    worker_a, worker_b = BinnedCounts.from_profile(profile), BinnedCounts.from_profile(profile)
    for batch in batches[:2]:
        worker_a.add(batch)
    for batch in batches[2:]:
        worker_b.add(batch)
    merged = worker_a.merge(worker_b)
    whole = BinnedCounts.from_profile(profile)
    whole.add(np.concatenate(batches))
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_array_equal(merged.missing, whole.missing)
    assert merged.missing.tolist() == [40, 0, 7, 0]
    assert merged.rows == whole.rows == 1384
    assert merged.counts.sum() + merged.missing.sum() == 1384 * 4
    np.testing.assert_array_equal(worker_a.merge(worker_b).counts, worker_b.merge(worker_a).counts)
    other = BinnedCounts.from_profile(build_profile(_mixed(rng, 500), _names(4)))
    with pytest.raises(ValueError, match="edges"):
        merged.merge(other)


def test_profile_bins_match_a_per_feature_reference() -> None:
    rng = np.random.default_rng(2)
    sample = _mixed(rng, 5_000)
    profile = build_profile(sample, _names(4))
    counts = BinnedCounts.from_profile(profile)
    counts.add(sample)
    np.testing.assert_array_equal(counts.counts, profile.ref_counts)
    assert profile.categorical.tolist() == [False, True, False, False]
    np.testing.assert_array_equal(profile.levels[1], [0.0, 1.0, 2.0, 3.0])
    for f in (0, 2, 3):  # deduplicated deciles, right-closed, no edge at the maximum
        column = sample[:, f]
        q = np.unique(np.quantile(column, np.arange(1, 10) / 10))
        q = q[q < column.max()]
        np.testing.assert_array_equal(profile.edges[f, 1 : profile.n_bins[f]], q)
        assert profile.n_bins[f] == q.size + 1
        assert np.all(np.isposinf(profile.edges[f, profile.n_bins[f] :]))
        expected = np.bincount(np.searchsorted(q, column, side="left"), minlength=q.size + 1)
        np.testing.assert_array_equal(profile.ref_counts[f, : profile.n_bins[f]], expected)
    assert profile.n_bins[2] < 10  # zero-inflated: the repeated zero quantile collapses
    assert profile.ref_counts[2, 0] == np.count_nonzero(sample[:, 2] == 0.0)
    np.testing.assert_allclose(profile.mean, sample.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(profile.std, sample.std(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(profile.minimum, sample.min(axis=0))
    np.testing.assert_array_equal(profile.maximum, sample.max(axis=0))


def test_profile_sample_is_bounded_and_seeded() -> None:
    rng = np.random.default_rng(3)
    sample = rng.normal(size=(3_000, 2))
    a = build_profile(sample, ["a", "b"], max_sample=500, seed=7)
    b = build_profile(sample, ["a", "b"], max_sample=500, seed=7)
    c = build_profile(sample, ["a", "b"], max_sample=500, seed=8)
    assert a.sample.shape == (500, 2) and a.n_rows == 3_000
    np.testing.assert_array_equal(a.sample, b.sample)
    assert not np.array_equal(a.sample, c.sample)
    rows = {tuple(r) for r in sample.tolist()}
    assert all(tuple(r) in rows for r in a.sample.tolist())  # whole rows, not mixed
    assert a.ref_counts.sum() == 3_000 * 2  # counts use every row


def test_explicit_categorical_and_validation() -> None:
    sample = np.array([[0.5, 1.0], [1.5, 2.0], [0.5, 3.0], [2.5, 1.0]])
    profile = build_profile(sample, ["a", "b"], categorical=[0])
    assert profile.categorical.tolist() == [True, False]
    np.testing.assert_array_equal(profile.levels[0], [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(profile.ref_counts[0, :3], [2, 1, 1])
    with pytest.raises(ValueError, match="unique"):
        build_profile(sample, ["a", "a"])
    with pytest.raises(ValueError, match="expected 3 features"):
        build_profile(sample, ["a", "b", "c"])
    with pytest.raises(ValueError, match="out of range"):
        build_profile(sample, ["a", "b"], categorical=[2])
    with pytest.raises(ValueError, match="no rows"):
        build_profile(np.empty((0, 2)), ["a", "b"])


def test_profile_round_trips_through_json() -> None:
    rng = np.random.default_rng(4)
    sample = _mixed(rng, 4_000)
    sample[rng.random(4_000) < 0.2, 0] = np.nan
    sample = np.column_stack([sample, np.full(4_000, np.nan)])  # an all-missing feature
    profile = build_profile(sample, _names(5), max_sample=1_000)
    text = json.dumps(profile.to_dict(), allow_nan=False)
    back = Profile.from_dict(json.loads(text))
    assert not back.edges.flags.writeable and not profile.sample.flags.writeable
    assert back.feature_names == profile.feature_names and back.n_rows == profile.n_rows
    for name in ("edges", "n_bins", "ref_counts", "categorical", "levels", "mean", "std"):
        np.testing.assert_array_equal(getattr(back, name), getattr(profile, name), err_msg=name)
    for name in ("minimum", "maximum", "nan_share", "sample", "sorted_sample", "sample_valid"):
        np.testing.assert_array_equal(getattr(back, name), getattr(profile, name), err_msg=name)
    window = _mixed(rng, 300) + 0.3
    window = np.column_stack([window, rng.normal(size=300)])
    before, after = compute_drift(profile, window), compute_drift(back, window)
    np.testing.assert_array_equal(before.psi, after.psi)
    np.testing.assert_array_equal(before.ks_p, after.ks_p)
    assert before.features == after.features
    counts = BinnedCounts.from_profile(profile)
    counts.add(window)
    assert counts.merge(BinnedCounts.from_profile(back)).rows == 300
    with pytest.raises(ValueError, match="format"):
        Profile.from_dict({"format": 99})
