import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ose import bench
from ose.arch import Arch, Embedding, build_model
from ose.costs import op_count
from ose.figures import latency_figure, speedup_figure

EMB = Embedding(vocab_size=99, max_positions=64, type_vocab_size=2)
NO_TYPES = Embedding(vocab_size=99, max_positions=64, type_vocab_size=0)
SHALLOW = Arch(1, 4, 64, 37)
DEEP = Arch(12, 4, 64, 37)


@pytest.fixture(scope="module")
def run():
    """One benchmark run of a 1-layer and a 12-layer model (same width), two cells."""
    models = {
        "shallow": build_model(SHALLOW, EMB, head="pooler", seed=0),
        "deep": build_model(DEEP, EMB, head="pooler", seed=0),
    }
    rows = bench.benchmark_models(
        models, batch_sizes=[2], seq_lens=[7, 9], threads=1, warmup=2, repeats=15, seed=0, progress=False
    )
    return models, rows


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny encoder without token types and its fp32 ONNX file."""
    folder = tmp_path_factory.mktemp("onnx")
    model = build_model(Arch(2, 4, 32, 37), NO_TYPES, head="none", seed=1)
    return model, bench.export_onnx(model, folder / "tiny.onnx", seq_len=7, batch=2)


def test_rows_have_one_entry_per_model_and_cell_with_consistent_numbers(run):
    models, rows = run
    assert len(rows) == 4
    assert {(r["model"], r["seq"]) for r in rows} == {(m, s) for m in models for s in (7, 9)}
    assert len({r["run_id"] for r in rows}) == 1
    for row in rows:
        assert set(bench.ROW_COLUMNS) <= set(row)
        assert row["backend"] == "torch" and row["head"] == "pooler" and row["threads"] == 1
        arch = SHALLOW if row["model"] == "shallow" else DEEP
        assert row["arch"] == arch.name
        assert row["params"] == sum(p.numel() for p in models[row["model"]].parameters())
        assert 0 < row["q1_ms"] <= row["median_ms"] <= row["q3_ms"]
        assert row["iqr_ms"] == pytest.approx(row["q3_ms"] - row["q1_ms"])
        assert row["seq_per_s"] == pytest.approx(row["batch"] / (row["median_ms"] / 1e3))
        assert row["gflops"] == pytest.approx(op_count(arch, row["seq"], EMB, "pooler").total * 2 / 1e9)
        assert row["gflops_per_s"] == pytest.approx(row["gflops"] / (row["median_ms"] / 1e3))


def test_deeper_model_is_slower_in_the_same_run(run):
    _, rows = run
    deep_vs_shallow = bench.speedups(rows, reference="deep", models=["shallow"])
    assert len(deep_vs_shallow) == 2
    # 12 layers against 1 of the same width: ~6-10× on an idle machine; 2× leaves room for a busy one
    assert all(r["speedup"] > 2 for r in deep_vs_shallow)
    assert all(r["speedup_low"] <= r["speedup"] <= r["speedup_high"] for r in deep_vs_shallow)
    flops = {(r["model"], r["seq"]): r["gflops"] for r in rows}
    assert flops[("deep", 7)] > 10 * flops[("shallow", 7)]


def test_speedup_of_the_reference_against_itself_is_one(run):
    _, rows = run
    own = bench.speedups(rows, reference="shallow", models=["shallow"])
    assert [r["speedup"] for r in own] == [1.0, 1.0]
    assert {r["model"] for r in bench.speedups(rows, reference="shallow")} == {"shallow", "deep"}


def test_speedups_never_pair_rows_of_different_runs(run):
    _, rows = run
    other_run = [{**r, "run_id": "other"} for r in rows if r["model"] == "deep"]
    mixed = [r for r in rows if r["model"] == "shallow"] + other_run
    with pytest.raises(ValueError, match="same run"):
        bench.speedups(mixed, reference="shallow", models=["deep"])
    # rows read back from CSV hold strings; they pair the same way
    as_text = [{k: str(v) for k, v in r.items()} for r in rows]
    assert [r["speedup"] for r in bench.speedups(as_text, "deep", ["shallow"])] == pytest.approx(
        [r["speedup"] for r in bench.speedups(rows, "deep", ["shallow"])]
    )


def test_bad_inputs_name_the_parameter(run):
    models, rows = run
    tiny = {"m": models["shallow"]}
    cases = [
        (dict(models={}), "models"),
        (dict(models=tiny, batch_sizes=[0]), "batch_sizes"),
        (dict(models=tiny, batch_sizes=[]), "batch_sizes"),
        (dict(models=tiny, seq_lens=[65]), "seq_lens"),
        (dict(models=tiny, threads=0), "threads"),
        (dict(models=tiny, repeats=0), "repeats"),
        (dict(models={"x": torch.nn.Linear(2, 2)}), "config"),
    ]
    for overrides, name in cases:
        kwargs = dict(batch_sizes=[2], seq_lens=[7], threads=1, warmup=0, repeats=1, progress=False)
        with pytest.raises(ValueError, match=name):
            bench.benchmark_models(**{**kwargs, **overrides})
    with pytest.raises(ValueError, match="reference"):
        bench.speedups(rows, reference="bert-large")
    with pytest.raises(ValueError, match="models"):
        bench.speedups(rows, reference="deep", models=["nope"])
    with pytest.raises(ValueError, match="batch"):
        bench.export_onnx(models["shallow"], "unused.onnx", seq_len=7, batch=0)
    with pytest.raises(ValueError, match="seq_len"):
        bench.export_onnx(models["shallow"], "unused.onnx", seq_len=65, batch=2)
    with pytest.raises(ValueError, match="sizes"):
        bench.gemm_peak_gflops(threads=1, sizes=[])


def test_gemm_peak_is_positive_and_gives_fractions(run):
    _, rows = run
    peak = bench.gemm_peak_gflops(threads=1, sizes=(32, 96), repeats=3, warmup=1)
    assert peak["gflops_per_s"] > 0 and peak["size"] in (32, 96)
    assert peak["gflops_per_s"] == max(peak["by_size"].values())
    fractions = bench.peak_fractions(rows, peak)
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
    path = bench.export_onnx(model, tmp_path / "m.onnx", seq_len=7, batch=2)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind
    session = bench.ort_session(path, threads=1)
    assert session.get_session_options().intra_op_num_threads == 1
    for batch, seq in ((2, 7), (3, 11), (1, 5)):  # the export's shape and two it never saw
        check = bench.check_equivalence(model, session, batch=batch, seq=seq, seed=batch)
        assert check["max_abs_diff"] < 1e-4, check
        assert check["cosine_min_token"] > 0.9999
        if head == "pooler":
            assert check["max_abs_diff_pooled"] < 1e-4


def test_int8_quantization_is_smaller_and_close(exported, tmp_path):
    model, path = exported
    quantized = bench.quantize_int8(path, tmp_path / "tiny-int8.onnx")
    assert quantized.stat().st_size < path.stat().st_size
    check = bench.check_equivalence(model, bench.ort_session(quantized, threads=1), batch=2, seq=9)
    assert check["cosine_first_token"] > 0.9 and check["cosine_min_token"] > 0.9, check
    assert check["max_abs_diff"] > 0  # it is a different computation, not the fp32 graph again


def test_onnx_sessions_are_benchmarked_beside_torch_models(exported, tmp_path):
    model, path = exported
    int8 = bench.quantize_int8(path, tmp_path / "tiny-int8.onnx")
    models = {
        "torch": model,
        "onnx": bench.ort_session(path, threads=1),
        "onnx-int8": bench.ort_session(int8, threads=1),
    }
    rows = bench.benchmark_models(models, [2], [7], threads=1, warmup=1, repeats=3, progress=False)
    by_model = {r["model"]: r for r in rows}
    assert by_model["torch"]["backend"] == "torch"
    assert by_model["onnx"]["backend"] == "onnxruntime"
    assert by_model["onnx-int8"]["backend"] == "onnxruntime-int8"
    # the analytic work and the parameter count come from the exported metadata
    assert len({(r["arch"], r["head"], r["params"], r["gflops"]) for r in rows}) == 1
    assert all(r["median_ms"] > 0 for r in rows)
    assert len(bench.speedups(rows, reference="torch")) == 3
    with pytest.raises(ValueError, match="threads"):
        bench.benchmark_models(
            {"onnx": bench.ort_session(path, threads=2)},
            [2],
            [7],
            threads=1,
            warmup=0,
            repeats=1,
            progress=False,
        )


def test_environment_metadata_names_versions_and_threads():
    import onnxruntime

    meta = bench.environment_metadata(threads=2)
    assert meta["onnxruntime"] == onnxruntime.__version__
    assert meta["torch_intra_op_threads"] == meta["ort_intra_op_threads"] == 2
    assert meta["cores"] >= 1 and meta["cpu"] and meta["dtype"] == "float32"


def test_figures_have_the_expected_axes(run):
    _, rows = run
    ratios = bench.speedups(rows, reference="deep")
    fig = speedup_figure(ratios, paper={"shallow vs deep": 20.0, "bort vs bert-base": 7.9})
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["shallow vs deep", "bort vs bert-base"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "paper (claimed)" in legend and "ours, batch 2 × seq 7" in legend
    labels = [t.get_text() for t in ax.texts]
    assert "paper 20×" in labels and "paper 7.9×" in labels
    measured = [np.round(r["speedup"], 1) for r in ratios if r["model"] == "shallow"]
    assert {f"{m:.1f}×" for m in measured} <= set(labels)

    fig = latency_figure(rows)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["shallow", "deep"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2 × 7", "2 × 9"]
