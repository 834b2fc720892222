import numpy as np
import pytest

from ose.arch import Arch, Embedding, enumerate_space
from ose.pipeline import clock
from ose.search import abnc, cost_model
from ose.search.cost_model import (
    CostModel,
    LatencySettings,
    feature_vector,
    fit_cost_model,
    mape,
    measure_space_sample,
    read_cache,
    sample_architectures,
    split_heldout,
)

SPACE = enumerate_space([1, 2, 3], [2, 4], [16, 24, 36], [37, 64])
TINY = LatencySettings(batch_size=2, seq_len=7, threads=1, warmup=1, repeats=3)


def test_fit_recovers_a_known_polynomial():
    truth = np.array([0.5, 0.1, 0, 2e-4, 3e-6, 1e-6, 0, 4e-5])
    settings = LatencySettings(1, 128, 1, 0, 1)
    latency = [float(feature_vector(a, 128) @ truth) for a in SPACE]
    model = fit_cost_model(SPACE, latency, settings)
    assert mape(model.predict_many(SPACE), latency) < 1e-6
    assert all(c >= 0 for c in model.coefficients)


def test_fit_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="at least two"):
        fit_cost_model(SPACE[:1], [1.0], TINY)


def test_mape():
    assert mape([110, 90], [100, 100]) == pytest.approx(10.0)


def test_sample_is_seeded_distinct_and_holds_the_extremes():
    a = sample_architectures(SPACE, 9, seed=4)
    assert a == sample_architectures(SPACE, 9, seed=4)
    assert a != sample_architectures(SPACE, 9, seed=5)
    assert len(set(a)) == 9
    assert Arch(1, 2, 16, 37) in a and Arch(3, 4, 36, 64) in a
    with pytest.raises(ValueError, match="between 2 and the space size"):
        sample_architectures(SPACE, len(SPACE) + 1, seed=0)


def test_heldout_split_keeps_extremes_in_the_fit():
    archs = sample_architectures(SPACE, 12, seed=0)
    fit, heldout = split_heldout(archs, 0.25, seed=0)
    assert len(heldout) == 3 and set(fit) | set(heldout) == set(archs)
    assert not set(fit) & set(heldout)
    assert archs[0] in fit and archs[1] in fit


def test_cost_model_json_round_trip(tmp_path):
    model = CostModel(tuple(range(8)), 128, 1, 1)
    model.to_json(tmp_path / "m.json")
    assert CostModel.from_json(tmp_path / "m.json") == model


def test_measurement_resumes_from_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache.csv"
    archs = SPACE[:3]
    rows = measure_space_sample("tiny", archs, TINY, cache, progress=False)
    assert [r["arch"] for r in rows] == [a.name for a in archs]
    assert all(r["median_ms"] > 0 for r in rows)
    assert len(read_cache(cache)) == 3

    calls = []
    real = cost_model.measure_latency
    monkeypatch.setattr(
        cost_model, "measure_latency", lambda arch, *a, **k: calls.append(arch) or real(arch, *a, **k)
    )
    measure_space_sample("tiny", SPACE[:4], TINY, cache, progress=False)
    assert calls == [SPACE[3]], "only the unmeasured architecture is timed again"
    other = LatencySettings(2, 5, 1, 1, 3)
    measure_space_sample("tiny", SPACE[:1], other, cache, progress=False)
    assert len(calls) == 2, "rows measured with other settings are not reused"


def test_refit_from_the_cache_gives_the_same_model(tmp_path):
    """A re-run that measures nothing must fit the model the first run fitted, to the last bit."""
    cache = tmp_path / "cache.csv"
    first = cost_model.fit_space("tiny", SPACE, 8, TINY, 0.25, 0, cache, progress=False)
    again = cost_model.fit_space("tiny", SPACE, 8, TINY, 0.25, 0, cache, progress=False)
    assert again.model == first.model
    assert again.rows == first.rows


def test_measure_parts_times_every_part():
    parts = cost_model.measure_parts(Arch(2, 4, 36, 37), TINY, Embedding(99, 19, 2))
    assert set(parts) == {"A", "B", "C_pooler", "C_mlm"}
    assert all(t.median_ms > 0 and t.repeats == 3 for t in parts.values())


def test_time_call_warms_up_untimed_then_times_each_repeat(monkeypatch):
    ticks = iter(range(100))  # perf_counter in seconds: every timed call lasts 1 s
    monkeypatch.setattr(clock.time, "perf_counter", lambda: next(ticks))
    calls = []
    assert clock.call_times_ms(lambda: calls.append(1), repeats=3, warmup=2) == [1e3] * 3
    assert len(calls) == 5
    timing = cost_model.time_call(lambda: calls.append(1), warmup=1, repeats=4, threads=1)
    assert (timing.median_ms, timing.iqr_ms, timing.repeats) == (1e3, 0.0, 4) and len(calls) == 10


def test_abnc_measured_conditions_from_rows():
    rows = [
        {"arch": "x", "key": "A", "params": 10, "median_ms": 0.1},
        {"arch": "x", "key": "B", "params": 5, "median_ms": 1.0},
        {"arch": "x", "key": "C", "params": 2, "median_ms": 0.01},
        {"arch": "x", "key": "Cmlm", "params": 3, "median_ms": 2.0},
    ]
    assert abnc.measured_conditions(rows) == {
        "p_A_le_B": False,
        "i_A_le_B": True,
        "p_C_le_B": True,
        "i_C_le_B": True,
        "p_Cmlm_le_B": True,
        "i_Cmlm_le_B": False,
    }


def test_abnc_fraction_and_representatives():
    fraction = abnc.fraction_holding(SPACE, 7, Embedding(99, 19, 2))
    assert set(fraction) == set(abnc.CONDITIONS)
    assert all(0.0 <= v <= 1.0 for v in fraction.values())
    reps = abnc.representatives(SPACE, Embedding(99, 19, 2))
    assert len(reps) == 3
    assert reps[0] == Arch(1, 2, 16, 37) and reps[-1] == Arch(3, 4, 36, 64)  # ties: larger A last
    verdict = abnc.verdict(dict.fromkeys(abnc.CONDITIONS, 1.0), dict.fromkeys(abnc.CONDITIONS, True))
    assert all(verdict.values())
    assert not abnc.verdict(dict.fromkeys(abnc.CONDITIONS, 0.99), dict.fromkeys(abnc.CONDITIONS, True))[
        "p_A_le_B"
    ]
