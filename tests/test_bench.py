import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from ose.arch import Arch, Embedding, build_model
from ose.reporting.figures import latency_figure, save, speedup_figure
from ose.search.objectives import op_count
from ose.speed import gemm, harness, onnx, ratios

EMB = Embedding(vocab_size=99, max_positions=64, type_vocab_size=2)
NO_TYPES = Embedding(vocab_size=99, max_positions=64, type_vocab_size=0)
SHALLOW = Arch(1, 4, 64, 37)
DEEP = Arch(12, 4, 64, 37)


@pytest.fixture(scope="module")
def run():
    """One benchmark run of a 1-layer and a 12-layer model (same width), two cells, three rounds."""
    models = {
        "shallow": build_model(SHALLOW, EMB, head="pooler", seed=0),
        "deep": build_model(DEEP, EMB, head="pooler", seed=0),
    }
    timings = harness.benchmark_models(
        models, batch_sizes=[2], seq_lens=[7, 9], threads=1, warmup=1, rounds=3, repeats=5, progress=False
    )
    return models, timings


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny encoder without token types and its fp32 ONNX file."""
    folder = tmp_path_factory.mktemp("onnx")
    model = build_model(Arch(2, 4, 32, 37), NO_TYPES, head="none", seed=1)
    return model, onnx.export_onnx(model, folder / "tiny.onnx", seq_len=7, batch=2)


def test_rows_have_one_entry_per_model_and_cell_with_consistent_numbers(run):
    models, timings = run
    rows = timings.rows
    assert len(rows) == 4
    assert {(r["model"], r["seq"]) for r in rows} == {(m, s) for m in models for s in (7, 9)}
    assert len({r["run_id"] for r in rows + timings.rounds}) == 1
    for row in rows:
        assert set(harness.ROW_COLUMNS) <= set(row)
        assert row["backend"] == "torch" and row["head"] == "pooler" and row["threads"] == 1
        assert row["rounds"] == 3 and row["calls"] == 5
        arch = SHALLOW if row["model"] == "shallow" else DEEP
        assert row["arch"] == arch.name
        assert row["params"] == sum(p.numel() for p in models[row["model"]].parameters())
        assert 0 < row["q1_ms"] <= row["median_ms"] <= row["q3_ms"]
        assert row["iqr_ms"] == pytest.approx(row["q3_ms"] - row["q1_ms"])
        per_round = [
            r["median_ms"] for r in timings.rounds if (r["model"], r["seq"]) == (row["model"], row["seq"])
        ]
        assert row["median_ms"] == pytest.approx(np.median(per_round))
        assert row["seq_per_s"] == pytest.approx(row["batch"] / (row["median_ms"] / 1e3))
        assert row["gflops"] == pytest.approx(op_count(arch, row["seq"], EMB, "pooler").total * 2 / 1e9)
        assert row["gflops_per_s"] == pytest.approx(row["gflops"] / (row["median_ms"] / 1e3))


def test_rounds_time_every_block_once_in_a_rotated_order(run):
    _, timings = run
    assert len(timings.rounds) == 3 * 4  # rounds × (models × cells)
    assert all(set(harness.ROUND_COLUMNS) == set(r) for r in timings.rounds)
    first = {}
    for r in timings.rounds:
        assert r["calls"] == 5 and r["median_ms"] > 0
        if r["position"] == 0:
            first[r["round"]] = (r["model"], r["seq"])
    # round r starts with the r-th cell and, within it, the r-th model (mod their counts)
    assert first == {0: ("shallow", 7), 1: ("deep", 9), 2: ("shallow", 7)}
    for k in range(3):
        positions = sorted(r["position"] for r in timings.rounds if r["round"] == k)
        assert positions == [0, 1, 2, 3]


def test_grid_models_cap_the_large_cells_and_min_round_ms_sizes_fast_blocks():
    models = {
        "shallow": build_model(SHALLOW, EMB, head="pooler", seed=0),
        "deep": build_model(DEEP, EMB, head="none", seed=0),
    }
    timings = harness.benchmark_models(
        models,
        batch_sizes=[3, 1],
        seq_lens=[9, 5],
        threads=1,
        warmup=3,
        rounds=2,
        repeats=1,
        min_round_ms=5.0,
        grid_models=["deep"],
        progress=False,
    )
    cells = {(r["model"], r["batch"], r["seq"]) for r in timings.rows}
    assert {c for c in cells if c[0] == "shallow"} == {("shallow", 1, 5)}  # the smallest cell only
    assert len([c for c in cells if c[0] == "deep"]) == 4
    assert len(timings.rounds) == 2 * 5
    # a block lasts about min_round_ms: a sub-millisecond model gets several calls
    shallow = next(r for r in timings.rows if r["model"] == "shallow")
    assert shallow["calls"] >= 2 and shallow["calls"] * shallow["median_ms"] > 2.0
    with pytest.raises(ValueError, match="grid_models"):
        harness.benchmark_models(models, [1], [5], 1, rounds=2, grid_models=["nope"], progress=False)


def test_deeper_model_is_slower_in_the_same_run(run):
    _, timings = run
    deep_vs_shallow = ratios.speedups(timings.rounds, reference="deep", models=["shallow"])
    assert len(deep_vs_shallow) == 2
    # 12 layers against 1 of the same width: ~6-10× on an idle machine; 2× leaves room for a busy one
    assert all(r["speedup"] > 2 for r in deep_vs_shallow)
    assert all(r["ci_low"] <= r["speedup"] <= r["ci_high"] for r in deep_vs_shallow)
    assert all(r["round_min"] <= r["speedup"] <= r["round_max"] and r["rounds"] == 3 for r in deep_vs_shallow)
    flops = {(r["model"], r["seq"]): r["gflops"] for r in timings.rows}
    assert flops[("deep", 7)] > 10 * flops[("shallow", 7)]


def test_speedup_of_the_reference_against_itself_is_one(run):
    _, timings = run
    own = ratios.speedups(timings.rounds, reference="shallow", models=["shallow"])
    assert [(r["speedup"], r["ci_low"], r["ci_high"]) for r in own] == [(1.0, 1.0, 1.0)] * 2
    assert {r["model"] for r in ratios.speedups(timings.rounds, reference="shallow")} == {"shallow", "deep"}


def _rounds(model_ms: dict[str, list[float]], run_id="r", batch=1, seq=8) -> list[dict]:
    """Synthetic `Timings.rounds` rows: model → its latency in each round."""
    return [
        {"run_id": run_id, "model": m, "batch": batch, "seq": seq, "threads": 2, "round": k, "median_ms": ms}
        for m, times in model_ms.items()
        for k, ms in enumerate(times)
    ]


def test_speedups_never_pair_rounds_of_different_runs():
    rounds = _rounds({"a": [10.0, 11.0, 9.0], "b": [2.0, 2.1, 1.9]})
    mixed = [r for r in rounds if r["model"] == "a"] + _rounds({"b": [2.0, 2.1, 1.9]}, run_id="other")
    with pytest.raises(ValueError, match="same run"):
        ratios.speedups(mixed, reference="a", models=["b"])
    # rows read back from CSV hold strings; they pair the same way
    as_text = [{k: str(v) for k, v in r.items()} for r in rounds]
    assert ratios.speedups(as_text, "a", ["b"])[0]["speedup"] == pytest.approx(
        ratios.speedups(rounds, "a", ["b"])[0]["speedup"]
    )
    # a round one model missed is left out of the pairing, not shifted onto another round
    gappy = [r for r in rounds if not (r["model"] == "b" and r["round"] == 1)]
    (row,) = ratios.speedups(gappy, "a", ["b"])
    assert row["rounds"] == 2 and row["speedup"] == pytest.approx(np.sqrt(10 / 2.0 * 9 / 1.9))


@pytest.mark.parametrize("n_rounds", [3, 7, 11])
def test_ratio_ci_recovers_a_known_ratio_and_covers_it(n_rounds):
    rng = np.random.default_rng(n_rounds)
    drift = np.linspace(1.0, 1.6, n_rounds)  # the machine slows down during the run: both models alike
    model = 7.0 * drift * rng.lognormal(0, 0.05, n_rounds)
    reference = 7.0 * 13.0 * drift * rng.lognormal(0, 0.05, n_rounds)
    ci = ratios.ratio_ci(reference, model, seed=1)
    assert ci["rounds"] == n_rounds
    assert ci["speedup"] == pytest.approx(13.0, rel=0.08)
    assert ci["ci_low"] < 13.0 < ci["ci_high"]
    assert ci["ci_low"] <= ci["speedup"] <= ci["ci_high"]
    assert ci["round_min"] >= ci["ci_low"] * 0.8 and ci["round_max"] <= ci["ci_high"] * 1.25
    per_round = reference / model
    assert ci["speedup"] == pytest.approx(np.exp(np.log(per_round).mean()))
    assert ci["round_sd_log"] == pytest.approx(np.log(per_round).std(ddof=1))
    assert ratios.ratio_ci(reference, model, seed=1) == ci  # seeded: the same interval again


def test_ratio_ci_interval_narrows_with_rounds_and_is_exact_without_noise():
    rng = np.random.default_rng(0)
    widths = []
    for n in (6, 150):
        model = rng.lognormal(0, 0.2, n)
        ci = ratios.ratio_ci(3.0 * rng.lognormal(0, 0.2, n), model)
        widths.append(ci["ci_high"] - ci["ci_low"])
    assert widths[1] < widths[0] / 2  # ~1/sqrt(25) narrower in expectation
    exact = ratios.ratio_ci([9.0, 18.0, 4.5], [3.0, 6.0, 1.5])
    assert (exact["speedup"], exact["ci_low"], exact["ci_high"]) == pytest.approx((3.0, 3.0, 3.0))


def test_ratio_ci_rejects_what_it_cannot_pair():
    with pytest.raises(ValueError, match="rounds"):
        ratios.ratio_ci([1.0], [2.0])
    with pytest.raises(ValueError, match="paired"):
        ratios.ratio_ci([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        ratios.ratio_ci([1.0, 0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="level"):
        ratios.ratio_ci([1.0, 2.0], [1.0, 2.0], level=95)


def test_stability_flags_a_ratio_that_drifts_between_the_halves():
    rng = np.random.default_rng(3)
    model = 5.0 * rng.lognormal(0, 0.03, 7)
    steady = 10.0 * rng.lognormal(0, 0.03, 7)
    ci = ratios.ratio_ci(steady, model)
    check = ratios.stability(steady, model, ci)
    assert check["stable"] and ci["ci_low"] <= check["first_half"] <= ci["ci_high"]
    # the int8 failure mode: the same two graphs, 0.76× early in the run and 1.84× late
    shifted = np.concatenate([0.76 * model[:4], 1.84 * model[4:]])
    ci = ratios.ratio_ci(shifted, model)
    check = ratios.stability(shifted, model, ci)
    assert not check["stable"]
    assert check["first_half"] == pytest.approx(0.76) and check["second_half"] == pytest.approx(1.84)


def test_claim_status_places_the_paper_against_the_interval():
    row = {"speedup": 15.0, "ci_low": 14.0, "ci_high": 16.5}
    assert ratios.claim_status(row, 20.0) == "short"
    assert ratios.claim_status(row, 15.9) == "holds"
    assert ratios.claim_status(row, 7.9) == "exceeded"
    wide = {"speedup": 14.4, "ci_low": 9.1, "ci_high": 21.5}  # a noisy cell: holds 10× to 21×
    assert ratios.claim_status(wide, 20.0) == "undecided" and ratios.claim_status(wide, 25.0) == "short"
    assert ratios.claim_status(wide, 20.0, decisive=3.0) == "holds"
    rows = ratios.speedups(
        _rounds({"a": [10.0, 12.0], "b": [1.0, 1.0]}, batch=8)
        + _rounds({"a": [5.0, 6.0], "b": [1.0, 1.1]}, batch=1),
        "a",
        ["b"],
    )
    assert ratios.headline_speedup(rows, "b", "a")["batch"] == 1
    assert ratios.headline_speedup(rows, "a", "b") is None


def test_bad_inputs_name_the_parameter(run):
    models, timings = run
    tiny = {"m": models["shallow"]}
    cases = [
        (dict(models={}), "models"),
        (dict(models=tiny, batch_sizes=[0]), "batch_sizes"),
        (dict(models=tiny, batch_sizes=[]), "batch_sizes"),
        (dict(models=tiny, seq_lens=[65]), "seq_lens"),
        (dict(models=tiny, threads=0), "threads"),
        (dict(models=tiny, repeats=0), "repeats"),
        (dict(models=tiny, rounds=1), "rounds"),
        (dict(models=tiny, min_round_ms=-1.0), "min_round_ms"),
        (dict(models={"x": torch.nn.Linear(2, 2)}), "config"),
    ]
    for overrides, name in cases:
        kwargs = dict(batch_sizes=[2], seq_lens=[7], threads=1, warmup=0, rounds=2, repeats=1, progress=False)
        with pytest.raises(ValueError, match=name):
            harness.benchmark_models(**{**kwargs, **overrides})
    with pytest.raises(ValueError, match="reference"):
        ratios.speedups(timings.rounds, reference="bert-large")
    with pytest.raises(ValueError, match="models"):
        ratios.speedups(timings.rounds, reference="deep", models=["nope"])
    with pytest.raises(ValueError, match="batch"):
        onnx.export_onnx(models["shallow"], "unused.onnx", seq_len=7, batch=0)
    with pytest.raises(ValueError, match="seq_len"):
        onnx.export_onnx(models["shallow"], "unused.onnx", seq_len=65, batch=2)
    with pytest.raises(ValueError, match="sizes"):
        gemm.gemm_peak_gflops(threads=1, sizes=[])


def test_gemm_peak_is_positive_and_gives_fractions(run):
    _, timings = run
    peak = gemm.gemm_peak_gflops(threads=1, sizes=(32, 96), repeats=3, warmup=1)
    assert peak["gflops_per_s"] > 0 and peak["size"] in (32, 96)
    assert peak["gflops_per_s"] == max(peak["by_size"].values())
    fractions = gemm.peak_fractions(timings.rows, peak)
    assert all(
        r["peak_fraction"] == pytest.approx(r["gflops_per_s"] / peak["gflops_per_s"]) for r in fractions
    )


@pytest.mark.parametrize(
    ("embedding", "head"),
    [(NO_TYPES, "none"), (EMB, "none"), (EMB, "pooler")],
    ids=["no-types", "types", "pooler"],
)
def test_onnx_export_round_trips_at_other_shapes(tmp_path, embedding, head):
    model = build_model(Arch(2, 4, 32, 37), embedding, head=head, seed=2)
    path = onnx.export_onnx(model, tmp_path / "m.onnx", seq_len=7, batch=2)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind
    session = onnx.ort_session(path, threads=1)
    assert session.get_session_options().intra_op_num_threads == 1
    for batch, seq in ((2, 7), (3, 11), (1, 5)):  # the export's shape and two it never saw
        check = onnx.check_equivalence(model, session, batch=batch, seq=seq, seed=batch)
        assert check["max_abs_diff"] < 1e-4, check
        assert check["cosine_min_token"] > 0.9999
        if head == "pooler":
            assert check["max_abs_diff_pooled"] < 1e-4


def test_int8_quantization_is_smaller_and_close(exported, tmp_path):
    model, path = exported
    quantized = onnx.quantize_int8(path, tmp_path / "tiny-int8.onnx")
    assert quantized.stat().st_size < path.stat().st_size
    check = onnx.check_equivalence(model, onnx.ort_session(quantized, threads=1), batch=2, seq=9)
    assert check["cosine_first_token"] > 0.9 and check["cosine_min_token"] > 0.9, check
    assert check["max_abs_diff"] > 0  # it is a different computation, not the fp32 graph again


def test_onnx_sessions_are_benchmarked_beside_torch_models(exported, tmp_path):
    model, path = exported
    int8 = onnx.quantize_int8(path, tmp_path / "tiny-int8.onnx")
    models = {
        "torch": model,
        "onnx": onnx.ort_session(path, threads=1),
        "onnx-int8": onnx.ort_session(int8, threads=1),
    }
    timings = harness.benchmark_models(
        models, [2], [7], threads=1, warmup=1, rounds=2, repeats=3, progress=False
    )
    by_model = {r["model"]: r for r in timings.rows}
    assert by_model["torch"]["backend"] == "torch"
    assert by_model["onnx"]["backend"] == "onnxruntime"
    assert by_model["onnx-int8"]["backend"] == "onnxruntime-int8"
    # the analytic work and the parameter count come from the exported metadata
    assert len({(r["arch"], r["head"], r["params"], r["gflops"]) for r in timings.rows}) == 1
    assert all(r["median_ms"] > 0 for r in timings.rows)
    assert len(ratios.speedups(timings.rounds, reference="torch")) == 3
    with pytest.raises(ValueError, match="threads"):
        harness.benchmark_models(
            {"onnx": onnx.ort_session(path, threads=2)},
            [2],
            [7],
            threads=1,
            warmup=0,
            rounds=2,
            repeats=1,
            progress=False,
        )


def test_environment_metadata_names_versions_and_threads():
    import onnxruntime

    meta = harness.environment_metadata(threads=2)
    assert meta["onnxruntime"] == onnxruntime.__version__
    assert meta["torch_intra_op_threads"] == meta["ort_intra_op_threads"] == 2
    assert meta["cores"] >= 1 and meta["cpu"] and meta["dtype"] == "float32"


def test_speedup_figure_draws_each_claim_with_intervals_and_stays_narrow(run, tmp_path):
    _, timings = run
    rows = ratios.speedups(timings.rounds, reference="deep")
    paper = {"shallow vs deep": 20.0, "bort vs bert-base": 7.9}
    fig = speedup_figure(rows, paper=paper)
    assert isinstance(fig, Figure)
    left, right = fig.axes
    assert [ax.get_title() for ax in fig.axes] == list(paper)
    assert [t.get_text() for t in left.get_xticklabels()] == ["2×7", "2×9"]
    labels = [t.get_text() for t in left.texts]
    assert "paper 20×" in labels
    assert {f"{r['speedup']:.1f}×" for r in rows if r["model"] == "shallow"} <= set(labels)
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["shallow"]
    (bars,) = left.containers  # one error-bar series, its caps at the interval's ends
    caps = sorted(y for cap in bars[1][:1] for y in cap.get_ydata())  # the lower caps, by value
    lows = sorted(r["ci_low"] for r in rows if r["model"] == "shallow")  # timings decide their order
    assert caps == pytest.approx(lows, rel=1e-6)
    assert 20.0 in [line.get_ydata()[0] for line in left.get_lines()]  # the paper's reference line
    assert "not measured" in [t.get_text() for t in right.texts] and "paper 7.9×" in [
        t.get_text() for t in right.texts
    ]
    save(fig, tmp_path / "ratios.png")
    width, height = Image.open(tmp_path / "ratios.png").size
    assert width <= 2400 and height <= 1200


def test_latency_figure_has_the_expected_axes(run):
    _, timings = run
    fig = latency_figure(timings.rows)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["shallow", "deep"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2 × 7", "2 × 9"]
