"""Schedules: exact values from the papers' formulas, phase boundaries, bounds, pickling, bad configs."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cpt_experiments.config import ScheduleConfig
from cpt_experiments.errors import ConfigError
from cpt_experiments.schedules import SCHEDULES, SPECS, build_schedule, parse_schedule, schedule_preview

PRESETS = sorted((Path(__file__).resolve().parents[2] / "conf" / "schedule").glob("*.yaml"))
# Presets interpolate the root `lr` node (set per scale); these are the 405M paper values.
PAPER_LR = {"eta_max": 3e-4, "eta_min": 3e-5, "eta_const": 1.65e-4}


def load_preset(path: Path):
    """A preset resolved against the paper's LRs, as `train.yaml` + `scale=paper` would."""
    return OmegaConf.create(
        OmegaConf.to_container(OmegaConf.create({"lr": PAPER_LR, "s": OmegaConf.load(path)}), resolve=True)["s"]
    )


# cos(pi k / 8) tables: COS8[k] = 0.1 + 0.45 (1 + cos(pi k / 8)), a cosine from 1.0 to 0.1 over 8 steps.
COS8 = [1.0, 0.9657457896, 0.8681980515, 0.7222075446, 0.55, 0.3777924554, 0.2318019485, 0.1342542104, 0.1]

UNIT = {"max_lr": 1.0, "min_lr": 0.1}
INF = {
    "name": "infinite",
    "max_lr": 1.0,
    "const_lr": 0.5,
    "min_lr": 0.1,
    "warmup_frac": 0.01,
    "cooldown_frac": 0.6,
    "anneal_frac": 0.14,
    "cooldown_shape": "cosine",
}
BRANCH = {"name": "branch_decay", **UNIT, "decay_frac": 0.8, "shape": "cosine"}

# (spec, total_steps, {step: expected LR}); every expected number is computed by hand from the formula.
CASES = {
    # W = 2, T = 10: warmup 0, 0.5, 1; then COS8[n - 2]; steps past T hold min_lr.
    "warmup_cosine": (
        {"name": "warmup_cosine", **UNIT, "warmup_frac": 0.2},
        10,
        {0: 0.0, 1: 0.5, 2: 1.0, **{n: COS8[n - 2] for n in range(3, 11)}, 11: 0.1, 50: 0.1},
    ),
    # W = 1.5 stays real: f(1) = 1/1.5; f(2) is cosine at s = 0.5 / 98.5.
    "warmup_cosine_real_w": (
        {"name": "warmup_cosine", **UNIT, "warmup_frac": 0.015},
        100,
        {1: 2 / 3, 2: 0.1 + 0.45 * (1 + math.cos(math.pi * 0.5 / 98.5))},
    ),
    # W = 0: no warmup, step 0 is already the peak; cosine over T = 8.
    "warmup_cosine_no_warmup": (
        {"name": "warmup_cosine", **UNIT, "warmup_frac": 0.0},
        8,
        {n: COS8[n] for n in range(9)},
    ),
    "constant": ({"name": "constant", "lr": 3e-5}, 10, {0: 3e-5, 9: 3e-5, 1000: 3e-5}),
    "warmup_constant": (
        {"name": "warmup_constant", "max_lr": 1.0, "warmup_frac": 0.2},
        10,
        {0: 0.0, 1: 0.5, 2: 1.0, 3: 1.0, 9: 1.0, 10_000: 1.0},
    ),
    # T = 100: W = 1, D = 60, A = 14, K = 100 - 1 - 14 = 85 (m = n - 1).
    # m = 30: 0.5 + 0.25 (1 + cos(pi/2)) = 0.75; m in [60, 85]: 0.5; m = 92: 0.5 * 0.2^(7/14) = 0.2236...
    "infinite_cosine": (
        INF,
        100,
        {0: 0.0, 1: 1.0, 31: 0.75, 61: 0.5, 70: 0.5, 86: 0.5, 93: 0.2236067977, 100: 0.1, 150: 0.1},
    ),
    # linear cooldown: 1 - 0.5 s; s = 0.5 -> 0.75, s = 0.2 -> 0.9.
    "infinite_linear": ({**INF, "cooldown_shape": "linear"}, 100, {13: 0.9, 31: 0.75, 61: 0.5}),
    # h(x) = 1/sqrt(1 + 10x) - 1: s = 0.5 -> 1 - 0.5 * h(0.5)/h(1) = 1 - 0.5 * 0.4082483/0.6984886... = 0.5764056;
    # s = 0.25 -> 0.6667967.
    "infinite_inv_sqrt": (
        {**INF, "cooldown_shape": "inverse_sqrt", "alpha": 10.0},
        100,
        {1: 1.0, 16: 0.6667966526, 31: 0.5764056403, 61: 0.5, 93: 0.2236067977},
    ),
    # anneal_frac = 0: the main path stays at const_lr forever.
    "infinite_no_anneal": ({**INF, "anneal_frac": 0.0}, 100, {61: 0.5, 99: 0.5, 100: 0.5, 10_000: 0.5}),
    # Later stage of the main path: no warmup, no cooldown, no anneal -> flat const_lr from step 0.
    "infinite_later_stage": (
        {**INF, "warmup_frac": 0.0, "cooldown_frac": 0.0, "anneal_frac": 0.0},
        10,
        {0: 0.5, 5: 0.5, 10: 0.5},
    ),
    # A = 10: 0.5 * 0.1^(n/10); n = 5 -> 0.1581138830; then hold 0.05.
    "exp_anneal": (
        {"name": "exp_anneal", "const_lr": 0.5, "min_lr": 0.05, "anneal_frac": 0.5},
        20,
        {0: 0.5, 5: 0.1581138830, 10: 0.05, 15: 0.05, 100: 0.05},
    ),
    # T = 10, W = 1, decay D = 4 from step 6: s = (n - 6)/4.
    "wsd_linear": (
        {"name": "wsd", **UNIT, "warmup_frac": 0.1, "decay_frac": 0.4, "decay_shape": "linear"},
        10,
        {0: 0.0, 1: 1.0, 6: 1.0, 7: 0.775, 8: 0.55, 9: 0.325, 10: 0.1, 11: 0.1},
    ),
    "wsd_cosine": (
        {"name": "wsd", **UNIT, "warmup_frac": 0.1, "decay_frac": 0.4, "decay_shape": "cosine"},
        10,
        {6: 1.0, 7: COS8[2], 8: 0.55, 9: COS8[6], 10: 0.1},
    ),
    # 0.1 + 0.9 (1 - sqrt(s)): s = 0.25 -> 0.55, s = 0.5 -> 0.3636038969.
    "wsd_sqrt": (
        {"name": "wsd", **UNIT, "warmup_frac": 0.1, "decay_frac": 0.4, "decay_shape": "sqrt"},
        10,
        {6: 1.0, 7: 0.55, 8: 0.3636038969, 10: 0.1},
    ),
    # Paper 2's multi-step PTFS: decay window from step 6 (D = 4); x0.316 at its start, 0.1 from s = 0.5 (step 8).
    "wsd_multistep": (
        {
            "name": "wsd",
            **UNIT,
            "warmup_frac": 0.1,
            "decay_frac": 0.4,
            "decay_shape": "multistep",
            "step_fracs": [0.0, 0.5],
            "step_factors": [0.316, 0.1],
        },
        10,
        {1: 1.0, 5: 1.0, 6: 1.0, 7: 0.316, 8: 0.1, 9: 0.1, 10: 0.1},
    ),
    # T = 30, P = 10, W = 2 per cycle: first cycle warms from 0, later ones from min_lr (0.1 + 0.9 r/2).
    "repeated_cosine": (
        {"name": "repeated_cosine", **UNIT, "warmup_frac": 0.2, "num_repeats": 3},
        30,
        {
            0: 0.0,
            1: 0.5,
            2: 1.0,
            6: 0.55,
            9: COS8[7],
            10: 0.1,
            11: 0.55,
            12: 1.0,
            16: 0.55,
            20: 0.1,
            21: 0.55,
            22: 1.0,
            29: COS8[7],
            30: 0.1,
            45: 0.1,
        },
    ),
    # Branch of T = 10 steps, D = 8: s = n / 8.
    "branch_decay_cosine": (BRANCH, 10, {n: COS8[n] for n in range(9)} | {9: 0.1, 100: 0.1}),
    # knee = linear: 1 - 0.9 n/8.
    "branch_decay_knee": ({**BRANCH, "shape": "knee"}, 10, {0: 1.0, 2: 0.775, 4: 0.55, 8: 0.1, 9: 0.1}),
    "branch_decay_linear": ({**BRANCH, "shape": "linear"}, 10, {0: 1.0, 2: 0.775, 6: 0.325, 8: 0.1}),
    # 0.316 for the first half of the decay (n < 4), 0.1 = min_lr from its middle on.
    "branch_decay_multistep": (
        {**BRANCH, "shape": "multistep", "step_fracs": [0.0, 0.5], "step_factors": [0.316, 0.1]},
        10,
        {0: 0.316, 3: 0.316, 4: 0.1, 7: 0.1, 8: 0.1, 9: 0.1},
    ),
    # Step points are parameters: DeepSeek-like drops at 25% and 75% of the decay.
    "branch_decay_multistep_late": (
        {**BRANCH, "shape": "multistep", "step_fracs": [0.25, 0.75], "step_factors": [0.316, 0.1]},
        10,
        {0: 1.0, 1: 1.0, 2: 0.316, 5: 0.316, 6: 0.1, 8: 0.1},
    ),
    # Two cycles of a 20-step stage, 12 + 8 steps (shares 0.6 / 0.4), no warmup: each a cosine to 0.1 over its
    # own length; the second restarts at 1.0 (the re-warm + re-decay of a chain, here with W = 0).
    "cosine_cycles": (
        {"name": "cosine_cycles", "max_lr": 1.0, "min_lr": 0.1, "warmup_frac": 0.0, "cycle_fracs": [0.6, 0.4]},
        20,
        {0: 1.0, 6: 0.55, 12: 1.0, 14: COS8[2], 16: 0.55, 19: COS8[7], 20: 0.1},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_exact_values(case: str) -> None:
    spec, total, expected = CASES[case]
    f = build_schedule(spec, total)
    got = {n: f(n) for n in expected}
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_every_registry_entry_has_exact_value_cases() -> None:
    assert {spec["name"] for spec, _, _ in CASES.values()} == set(SCHEDULES)


def test_registry_functions_are_what_build_binds() -> None:
    for spec, total, expected in CASES.values():
        built = build_schedule(spec, total)
        assert built.func is SCHEDULES[spec["name"]]
        assert [SCHEDULES[spec["name"]](n, **built.keywords) for n in expected] == [built(n) for n in expected]


def test_cosine_cycles_is_the_cpt_chains_lr_path_step_for_step() -> None:
    # paper1/final at cpu scale: pre-train 768 steps, continual 512 (re-warm from 0, 1% warmup per stage).
    cos = {"name": "warmup_cosine", "max_lr": 1e-3, "min_lr": 1e-4, "warmup_frac": 0.01}
    chain = schedule_preview(cos, 768) + schedule_preview(cos, 512)
    one = schedule_preview({**cos, "name": "cosine_cycles", "cycle_fracs": [0.6, 0.4]}, 1280)
    assert one == chain


@pytest.mark.parametrize(
    ("fracs", "fragment"), [([0.5, 0.4], "summing to 1"), ([1.0, 0.0], "positive"), ([0.999, 0.001], "at least one")]
)
def test_cosine_cycles_refuses_bad_shares(fracs, fragment) -> None:
    spec = {"name": "cosine_cycles", "max_lr": 1.0, "min_lr": 0.1, "warmup_frac": 0.0, "cycle_fracs": fracs}
    with pytest.raises(ConfigError, match=fragment) as err:
        build_schedule(spec, 100)
    assert "schedule.cycle_fracs" in str(err.value)


def test_paper_405m_warmup_stays_real() -> None:
    # 300B-token stage: T = 132,366, W = 1% of T = 1323.66 steps (paper 1, §5), not rounded.
    f = build_schedule({"name": "warmup_cosine", "max_lr": 3e-4, "min_lr": 3e-5, "warmup_frac": 0.01}, 132_366)
    assert f.keywords["warmup_steps"] == pytest.approx(1323.66)
    assert f(1323) == pytest.approx(3e-4 * 1323 / 1323.66, rel=1e-12)
    s = (1324 - 1323.66) / (132_366 - 1323.66)  # cosine denominator T - W
    assert f(1324) == pytest.approx(3e-5 + 0.5 * 2.7e-4 * (1 + math.cos(math.pi * s)), rel=1e-12)
    assert f(132_366) == pytest.approx(3e-5, rel=1e-12)


def test_infinite_fractions_to_steps() -> None:
    # Fork values: W = 0.01 T, D = 0.60 T, K = 0.85 T measured from the end of warmup, A = 0.14 T.
    f = build_schedule({**INF, "max_lr": 3e-4, "const_lr": 1.65e-4, "min_lr": 3e-5}, 10_000)
    kw = f.keywords
    assert (kw["warmup_steps"], kw["cooldown_steps"], kw["anneal_steps"]) == pytest.approx((100, 6000, 1400))
    assert kw["constant_end"] == pytest.approx(8500)
    assert f(100 + 6000) == pytest.approx(1.65e-4)  # end of cooldown (n = 0.61 T)
    assert f(100 + 8500) == pytest.approx(1.65e-4)  # end of constant (n = 0.86 T)
    assert f(100 + 8500 + 700) == pytest.approx(1.65e-4 * (3e-5 / 1.65e-4) ** 0.5)
    assert f(10_000) == pytest.approx(3e-5)


def test_repeated_cosine_period_is_stage_over_repeats() -> None:
    f = build_schedule({"name": "repeated_cosine", **UNIT, "warmup_frac": 0.01, "num_repeats": 3}, 132_366)
    assert f.keywords["period_steps"] == pytest.approx(44_122)
    assert f.keywords["warmup_steps"] == pytest.approx(441.22)
    assert f(44_122) == pytest.approx(0.1) and f(44_122 + 441) == pytest.approx(0.1 + 0.9 * 441 / 441.22)


def test_branch_decay_fraction_of_branch_steps() -> None:
    f = build_schedule({**BRANCH, "decay_frac": 0.25}, 400)  # D = 100 steps, then min_lr
    assert f.keywords["decay_steps"] == 100
    assert f(50) == pytest.approx(0.55) and f(100) == 0.1 and f(399) == 0.1


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_presets_continuous_and_bounded(path: Path) -> None:
    spec = load_preset(path)
    total = 20_000
    values = schedule_preview(spec, total)
    f = build_schedule(spec, total)
    values += [f(n) for n in (total, total + 1, 3 * total)]  # past the end: the final value is held
    peak = max(spec.get("max_lr", 0.0), spec.get("const_lr", 0.0), spec.get("lr", 0.0))
    floor = spec.get("min_lr", spec.get("lr", spec.get("max_lr")))  # path_main: max_lr after warmup
    assert max(values) == pytest.approx(peak, rel=1e-6)
    assert all(0.0 <= v <= peak * (1 + 1e-12) for v in values)
    warmup_steps = math.floor(spec.get("warmup_frac", 0.0) * total)
    assert all(v >= floor * (1 - 1e-12) for v in values[warmup_steps + 1 :])
    # Adjacent steps differ by less than 2% of the peak: phase boundaries do not jump (a wrong phase
    # at a boundary would jump by ~(max_lr - const_lr) = 45% of the peak).
    jumps = [abs(b - a) for a, b in zip(values[:total], values[1:total])]
    assert max(jumps) < 0.02 * peak


def test_phase_boundaries_follow_the_formula() -> None:
    f = build_schedule(INF, 1000)  # W = 10, D = 600, K = 850, A = 140
    # warmup end -> cooldown start: f(10) = max_lr; f(11) = cosine at s = 1/600.
    assert f(10) == 1.0 and f(11) == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi / 600)))
    # cooldown end -> constant: f(609) at s = 599/600, then exactly const_lr.
    assert f(609) == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi * 599 / 600))) and f(610) == 0.5
    # constant -> anneal: f(860) = const_lr, f(861) = 0.5 * 0.2^(1/140).
    assert f(860) == 0.5 and f(861) == pytest.approx(0.5 * 0.2 ** (1 / 140))
    assert abs(f(861) - f(860)) < 0.01 and abs(f(11) - f(10)) < 1e-5


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_presets_pickle_and_deepcopy(path: Path) -> None:
    f = build_schedule(load_preset(path), 1000)
    g, h = pickle.loads(pickle.dumps(f)), copy.deepcopy(f)
    assert [g(n) for n in range(0, 1001, 7)] == [f(n) for n in range(0, 1001, 7)] == [h(n) for n in range(0, 1001, 7)]


def test_presets_hold_paper_values() -> None:
    specs = {p.stem: OmegaConf.to_container(load_preset(p)) for p in PRESETS}
    assert {
        "cosine",
        "constant",
        "infinite_cosine",
        "infinite_inv_sqrt",
        "wsd",
        "repeated_cosine",
        "path_main",
        "path_branch",
    } <= specs.keys()
    assert specs["cosine"] == {"name": "warmup_cosine", "max_lr": 3e-4, "min_lr": 3e-5, "warmup_frac": 0.01}
    assert specs["constant"] == {"name": "constant", "lr": 3e-5}
    inf = specs["infinite_inv_sqrt"]
    assert (inf["const_lr"], inf["cooldown_frac"], inf["alpha"]) == (1.65e-4, 0.6, 10.0)
    # constant phase ends at K = 0.85 T after a 1% warmup, so A = 1 - 0.01 - 0.85.
    assert inf["warmup_frac"] + inf["anneal_frac"] == pytest.approx(0.15)


def test_preview_is_one_value_per_step() -> None:
    values = schedule_preview({"name": "warmup_cosine", **UNIT, "warmup_frac": 0.2}, 10)
    assert values == pytest.approx([0.0, 0.5] + COS8[:8])


def test_module_does_not_import_torch() -> None:
    code = "import sys, cpt_experiments.schedules; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


BAD = [
    ({"name": "cosine_typo", **UNIT}, 10, "schedule.name", "known: branch_decay"),
    ({"max_lr": 1.0}, 10, "schedule.name", "unknown schedule"),
    ({"name": "warmup_cosine", **UNIT, "warmup_frac": 1.0}, 10, "schedule.warmup_frac", "shorter"),
    ({"name": "warmup_cosine", **UNIT, "warmup_frac": 1.5}, 10, "schedule.warmup_frac", "[0, 1]"),
    ({"name": "warmup_cosine", **UNIT, "warmup_frac": -0.1}, 10, "schedule.warmup_frac", "[0, 1]"),
    ({"name": "warmup_cosine", "max_lr": 0.0, "min_lr": 0.0, "warmup_frac": 0.1}, 10, "schedule.max_lr", "> 0"),
    ({"name": "warmup_cosine", "max_lr": -1.0, "min_lr": 0.0, "warmup_frac": 0.1}, 10, "schedule.max_lr", ">= 0"),
    ({"name": "warmup_cosine", "max_lr": 1.0, "min_lr": -0.1, "warmup_frac": 0.1}, 10, "schedule.min_lr", ">= 0"),
    ({"name": "warmup_cosine", "max_lr": 1.0, "min_lr": 2.0, "warmup_frac": 0.1}, 10, "schedule.min_lr", "<= max_lr"),
    ({"name": "warmup_cosine", "max_lr": 1.0, "warmup_frac": 0.1}, 10, "schedule.min_lr", "missing"),
    ({"name": "warmup_cosine", **UNIT, "warmup_frac": "0.1"}, 10, "schedule.warmup_frac", "number"),
    (
        {"name": "warmup_cosine", **UNIT, "warmup_frac": 0.1, "warmup_steps": 5},
        10,
        "schedule.warmup_steps",
        "unknown key",
    ),
    ({"name": "warmup_cosine", **UNIT, "warmup_frac": 0.1}, 0, "schedule.total_steps", ">= 1"),
    ({"name": "constant", "lr": 0.0}, 10, "schedule.lr", "> 0"),
    ({"name": "warmup_constant", "max_lr": 0.0, "warmup_frac": 0.1}, 10, "schedule.max_lr", "> 0"),
    ({**INF, "cooldown_frac": 0.9}, 100, "schedule.cooldown_frac", "exceeds the stage"),
    ({**INF, "anneal_frac": 1.2}, 100, "schedule.anneal_frac", "[0, 1]"),
    ({**INF, "const_lr": 2.0}, 100, "schedule.const_lr", "[min_lr, max_lr]"),
    ({**INF, "cooldown_shape": "exp"}, 100, "schedule.cooldown_shape", "cosine, inverse_sqrt, linear"),
    ({**INF, "alpha": 0}, 100, "schedule.alpha", "> 0"),
    ({"name": "exp_anneal", "const_lr": 0.5, "min_lr": 0.6, "anneal_frac": 1.0}, 10, "schedule.min_lr", "const_lr"),
    ({"name": "exp_anneal", "const_lr": 0.5, "min_lr": 0.1, "anneal_frac": 0.0}, 10, "schedule.anneal_frac", "> 0"),
    (
        {"name": "wsd", **UNIT, "warmup_frac": 0.5, "decay_frac": 0.6, "decay_shape": "linear"},
        10,
        "schedule.decay_frac",
        "exceeds",
    ),
    (
        {"name": "wsd", **UNIT, "warmup_frac": 0.1, "decay_frac": 0.2, "decay_shape": "1-sqrt"},
        10,
        "schedule.decay_shape",
        "sqrt",
    ),
    ({"name": "repeated_cosine", **UNIT, "warmup_frac": 0.01, "num_repeats": 0}, 10, "schedule.num_repeats", "integer"),
    (
        {"name": "repeated_cosine", **UNIT, "warmup_frac": 0.01, "num_repeats": 2.5},
        10,
        "schedule.num_repeats",
        "integer",
    ),
    ({**BRANCH, "decay_frac": 0.0}, 10, "schedule.decay_frac", "> 0"),
    ({**BRANCH, "shape": "step"}, 10, "schedule.shape", "multistep"),
    ({**BRANCH, "shape": "multistep"}, 10, "schedule.step_fracs", "missing"),
    (
        {**BRANCH, "shape": "multistep", "step_fracs": [0.0], "step_factors": [0.3, 0.1]},
        10,
        "schedule.step_factors",
        "one factor",
    ),
    (
        {**BRANCH, "shape": "multistep", "step_fracs": [0.5, 0.2], "step_factors": [0.3, 0.1]},
        10,
        "schedule.step_fracs",
        "increasing",
    ),
    (
        {**BRANCH, "shape": "multistep", "step_fracs": [0.0, 0.5], "step_factors": [0.1, 0.3]},
        10,
        "schedule.step_factors",
        "non-increasing",
    ),
    (
        {**BRANCH, "shape": "multistep", "step_fracs": [0.0, 0.5], "step_factors": [0.316, 0.2]},
        10,
        "schedule.step_factors",
        "min_lr",
    ),
]


@pytest.mark.parametrize(("spec", "total", "key", "fragment"), BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_config_raises_one_line_error_naming_the_key(spec: dict, total: int, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_schedule(spec, total)
    message = str(info.value)
    assert message.startswith(f"{key}: ") and fragment in message and "\n" not in message


def test_error_key_prefix_is_configurable() -> None:
    with pytest.raises(ConfigError, match=r"^stages\.cpt\.schedule\.name: "):
        build_schedule({"name": "nope"}, 10, key="stages.cpt.schedule")


def test_every_schedule_name_has_one_typed_config() -> None:
    assert SPECS.keys() == SCHEDULES.keys()
    assert all(cls.NAME == name for name, cls in SPECS.items())


@pytest.mark.parametrize(
    ("spec", "peak"),
    [
        ({"name": "constant", "lr": 3e-5}, 3e-5),
        ({"name": "exp_anneal", "const_lr": 1.65e-4, "min_lr": 3e-5, "anneal_frac": 1.0}, 1.65e-4),
        ({"name": "warmup_constant", "max_lr": 2e-4, "warmup_frac": 0.1}, 2e-4),
        ({**INF, "max_lr": 3e-4, "const_lr": 1.65e-4, "min_lr": 3e-5}, 3e-4),
        ({**BRANCH, "max_lr": 6e-4, "min_lr": 6e-5}, 6e-4),
        *[(spec, spec["max_lr"]) for spec, _, _ in CASES.values() if "max_lr" in spec],
    ],
    ids=lambda v: v["name"] if isinstance(v, dict) else "",
)
def test_peak_lr_is_the_lr_the_schedule_is_scaled_by(spec: dict, peak: float) -> None:
    assert parse_schedule(spec).peak_lr == peak


def test_spec_is_exactly_the_keys_the_config_set() -> None:
    # The stage hash covers spec(): the non-null keys of the node, values as given (lists as lists), so a
    # branch_decay preset's step_fracs/step_factors stay in it even for a cosine shape.
    cfg = ScheduleConfig(name="branch_decay", max_lr=1.0, min_lr=0.1, decay_frac=1.0, shape="cosine",
                         step_fracs=[0.0, 0.5], step_factors=[0.316, 0.1])  # fmt: skip
    expected = {k: v for k, v in vars(cfg).items() if v is not None}
    got = parse_schedule(cfg).spec()
    assert got == expected and {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}
    for spec, _, _ in CASES.values():
        assert parse_schedule(spec).spec() == spec


def test_an_unknown_key_is_rejected_once_at_parse_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^stages\.x\.schedule\.cycle_fracs: unknown key for 'warmup_cosine'"):
        parse_schedule({"name": "warmup_cosine", **UNIT, "warmup_frac": 0.1, "cycle_fracs": [1.0]}, "stages.x.schedule")
    # A bad value is found when the spec is parsed, before any stage length is known.
    with pytest.raises(ConfigError, match=r"^stages\.x\.schedule\.warmup_frac: "):
        parse_schedule({"name": "warmup_cosine", **UNIT, "warmup_frac": 1.0}, "stages.x.schedule")
    # Checks that need the stage length keep the parse-time key.
    spec = parse_schedule(
        {"name": "repeated_cosine", **UNIT, "warmup_frac": 0.0, "num_repeats": 5}, "stages.x.schedule"
    )
    with pytest.raises(ConfigError, match=r"^stages\.x\.schedule\.num_repeats: .*total_steps=4"):
        spec.build(4)


def test_inverse_sqrt_alpha_comes_from_the_config_not_a_code_default() -> None:
    inv = {**INF, "cooldown_shape": "inverse_sqrt"}
    with pytest.raises(ConfigError, match=r"^schedule\.alpha: missing"):
        parse_schedule(inv)
    assert "alpha" not in parse_schedule(INF).spec()  # a cosine cooldown needs none
    assert parse_schedule({**inv, "alpha": 10.0}).build(100).keywords["cooldown"].keywords == {"alpha": 10.0}
