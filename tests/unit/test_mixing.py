"""Mixture plan: exact per-block quotas, determinism, replay modes, validation, accounting."""

from __future__ import annotations

import numpy as np
import pytest

from cpt_experiments.config import ReplayConfig
from cpt_experiments.config.convert import typed
from cpt_experiments.data.mixing import MixturePlan
from cpt_experiments.data.mixture_sources import SourceSpec
from cpt_experiments.data.replay import Replay, consumed_windows, fresh_replay_source, seen_replay_source
from cpt_experiments.errors import ConfigError


def _plan(ratio: float, *, num_windows: int = 8 * 400, seed: int = 0, batch: int = 8, size: int = 10_000, **kw):
    w = Replay.from_config(ReplayConfig(ratio=ratio, sources={"A": 1.0})).mix({"B": 0.6, "C": 0.4})
    return MixturePlan(
        [SourceSpec(n, size, x) for n, x in w.items()], num_windows, seed=seed, batch_windows=batch, **kw
    )


@pytest.mark.parametrize(
    ("ratio", "block_batches"), [(0.0, 5), (0.005, 125), (0.01, 125), (0.05, 25), (0.25, 5), (0.5, 5)]
)
def test_every_block_holds_exact_quotas(ratio: float, block_batches: int) -> None:
    plan = _plan(ratio, num_windows=8 * 1000)
    assert plan.block_batches == block_batches  # smallest k with integer weights * k * 8
    block = plan.block_windows
    expected = {n: round(w * block) for n, w in zip(plan.names, plan.weights)}
    for b in range(plan.num_windows // block):
        assert plan.counts(b * block, (b + 1) * block) == expected
        src, _ = plan.block(b)
        assert np.bincount(src, minlength=len(plan.names)).tolist() == [expected[n] for n in plan.names]
    # realised fraction over the stage equals the configured one exactly
    n = plan.num_windows
    assert plan.counts(0, n) == {name: round(w * n) for name, w in zip(plan.names, plan.weights)}
    assert plan.realised_fractions(0, n) == pytest.approx(dict(zip(plan.names, plan.weights)), abs=1e-15)


def test_auto_block_for_half_percent_with_batches_of_eight() -> None:
    plan = MixturePlan(
        [SourceSpec("B", 10_000, 0.995), SourceSpec("A", 10_000, 0.005)], 8 * 100, seed=0, batch_windows=8
    )
    assert (plan.block_batches, plan.block_windows) == (25, 200)
    assert plan.counts(0, 200) == {"B": 199, "A": 1}


def test_every_batch_holds_its_share_within_one_and_sources_interleave() -> None:
    plan = _plan(0.25, num_windows=16 * 100, batch=16)
    src, win = plan.lookup(np.arange(plan.num_windows))
    per_batch = np.stack([np.bincount(src[i : i + 16], minlength=3) for i in range(0, len(src), 16)])
    assert np.all(np.abs(per_batch - np.array([0.45, 0.3, 0.25]) * 16) < 1 + 1e-9)
    assert not np.all(np.diff(src[:16]) >= 0)  # shuffled within a batch, not sorted by source


def test_cumulative_rounding_when_no_integer_block_exists() -> None:
    plan = MixturePlan(
        [SourceSpec("B", 10_000, 2 / 3), SourceSpec("A", 10_000, 1 / 3)],
        7 * 300,
        seed=0,
        batch_windows=7,
        block_batches=1,
    )
    for b in range(300):
        n = (b + 1) * 7
        c = plan.counts(0, n)
        assert abs(c["B"] - n * 2 / 3) < 1 and abs(c["A"] - n / 3) < 1 and c["B"] + c["A"] == n


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    pos = np.arange(8 * 400)
    s0, w0 = _plan(0.05, seed=3).lookup(pos)
    s1, w1 = _plan(0.05, seed=3).lookup(pos)
    s2, w2 = _plan(0.05, seed=4).lookup(pos)
    assert np.array_equal(s0, s1) and np.array_equal(w0, w1)
    assert not np.array_equal(w0, w2)
    assert _plan(0.05, seed=3).fingerprint() == _plan(0.05, seed=3).fingerprint() != _plan(0.05, seed=4).fingerprint()


def test_shuffle_order_is_a_permutation_per_epoch_and_reshuffled() -> None:
    plan = MixturePlan([SourceSpec("A", 50, 1.0)], 150, seed=1, batch_windows=10, allow_repeat=True)
    _, win = plan.lookup(np.arange(150))
    epochs = win.reshape(3, 50)
    assert all(sorted(e.tolist()) == list(range(50)) for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])
    assert plan.epochs_per_source() == {"A": 3.0}


def test_seen_replay_reproduces_parent_order_and_fresh_avoids_it() -> None:
    parent = _plan(0.0, num_windows=8 * 200, size=3000)  # source B: 0.6 share -> 960 windows consumed
    seen = consumed_windows(parent, "B")
    src, win = parent.lookup(np.arange(parent.num_windows))
    assert np.array_equal(seen, win[src == parent.names.index("B")])
    assert len(seen) == 960 and len(np.unique(seen)) == 960

    spec = seen_replay_source(parent, "B", 0.5)
    child = MixturePlan([SourceSpec("D", 5000, 0.5), spec], 8 * 100, seed=9, batch_windows=8)
    csrc, cwin = child.lookup(np.arange(child.num_windows))
    assert np.array_equal(cwin[csrc == 1], seen[:400])  # original order from the first seen window
    shuffled = seen_replay_source(parent, "B", 0.5, reshuffle=True, seed=5).order
    assert sorted(shuffled.tolist()) == sorted(seen.tolist()) and not np.array_equal(shuffled, seen)

    fresh = fresh_replay_source(parent, "B", 3000, 0.5, seed=2)
    assert len(fresh.order) == 3000 - 960 and not set(fresh.order.tolist()) & set(seen.tolist())
    child = MixturePlan([SourceSpec("D", 5000, 0.5), fresh], 8 * 250, seed=9, batch_windows=8)
    csrc, cwin = child.lookup(np.arange(child.num_windows))
    assert not set(cwin[csrc == 1].tolist()) & set(seen.tolist())


def test_replay_weights_are_compute_equivalent() -> None:
    w = Replay.from_config(ReplayConfig(ratio=0.2, sources={"A": 0.25, "Z": 0.75})).mix({"B": 3.0, "C": 1.0})
    assert w == pytest.approx({"B": 0.6, "C": 0.2, "A": 0.05, "Z": 0.15})
    assert Replay.from_config(ReplayConfig(ratio=0.0, sources={"A": 1.0})).mix({"B": 1.0}) == {"B": 1.0}
    assert Replay.from_config(ReplayConfig(ratio=0.0, sources={"A": 1.0}, mode="fresh")) == Replay()  # normalised


def test_too_small_source_raises_and_allow_repeat_reports_epochs() -> None:
    with pytest.raises(ConfigError, match=r"^mixing\.sources\.A: needs 400 windows but has 100"):
        MixturePlan([SourceSpec("B", 10_000, 0.5), SourceSpec("A", 100, 0.5)], 800, seed=0, batch_windows=8)
    plan = MixturePlan(
        [SourceSpec("B", 10_000, 0.5), SourceSpec("A", 100, 0.5)], 800, seed=0, batch_windows=8, allow_repeat=True
    )
    assert plan.epochs_per_source() == {"B": 0.04, "A": 4.0}


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (
            lambda: MixturePlan([SourceSpec("B", 99, 1.2), SourceSpec("A", 99, -0.2)], 16, seed=0, batch_windows=8),
            "mixing.weights.A",
        ),
        (
            lambda: MixturePlan([SourceSpec("B", 99, 0.5), SourceSpec("A", 99, 0.4)], 16, seed=0, batch_windows=8),
            "mixing.weights",
        ),
        (
            lambda: MixturePlan(
                [SourceSpec("B", 99, 1 - 1e-7), SourceSpec("A", 99, 1e-7)], 16, seed=0, batch_windows=8
            ),
            "mixing.weights",
        ),  # a tiny positive weight is never rounded away to a zero quota
        (
            lambda: MixturePlan(
                [SourceSpec("B", 99, 2 / 3), SourceSpec("A", 99, 1 / 3)], 16, seed=0, batch_windows=2, block_batches=1
            ),
            "mixing.block_batches",
        ),
        (lambda: typed(ReplayConfig, {"ratio": 1.0, "sources": {"A": 1.0}}, key="replay"), "replay.ratio"),
        (lambda: typed(ReplayConfig, {"ratio": -0.1, "sources": {"A": 1.0}}, key="replay"), "replay.ratio"),
        (lambda: typed(ReplayConfig, {"ratio": "lots"}, key="replay"), "replay.ratio"),  # type and range: the schema
        (lambda: Replay.from_config(ReplayConfig(ratio=0.1, sources={"A": 0.5})), "replay.sources"),
        (lambda: Replay.from_config(ReplayConfig(ratio=0.1, sources={"A": 1.0}, mode="old")), "replay.mode"),
        (lambda: MixturePlan([SourceSpec("B", 99, 1.0)], 4, seed=0, batch_windows=8), "mixing.num_windows"),
        (lambda: MixturePlan([SourceSpec("B", 99, 1.0)], 12, seed=0, batch_windows=8), "mixing.num_windows"),
    ],
)
def test_bad_input_raises_one_line_config_error_naming_the_key(build, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build()
    msg = str(err.value)
    assert msg.startswith(f"{key}: ") and "\n" not in msg
