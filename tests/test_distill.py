import math

import pytest
import torch
import torch.nn.functional as F

from ose.arch import Arch, Embedding, build_model
from ose.search import surrogate
from ose.search.surrogate import SurrogateJob, evaluate_table, read_shards
from ose.training.distill import (
    MLM_ONLY,
    FixedSample,
    KDWeights,
    distill_on_sample,
    fixed_sample,
    heldout_kd_loss,
    kd_loss,
    surrogate_error,
)
from ose.training.mlm import IGNORE, masked_logits

EMB = Embedding(vocab_size=99, max_positions=19, type_vocab_size=2)


class ToyTokenizer:
    pad_token_id, cls_token_id, sep_token_id, mask_token_id = 0, 1, 2, 3
    all_special_ids = [0, 1, 2, 3]


def toy_blocks(n=29, length=13, seed=0):
    ids = torch.randint(4, 99, (n, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0], ids[:, -1] = 1, 2
    return ids


@pytest.fixture(scope="module")
def teacher():
    return build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=1).eval()


def test_kd_loss_parts():
    g = torch.Generator().manual_seed(0)
    student, teacher_logits = torch.randn(7, 11, generator=g), torch.randn(7, 11, generator=g)
    targets = torch.randint(11, (7,), generator=g)
    only_ce = kd_loss(student, teacher_logits, targets, KDWeights(alpha=1.0, beta=0.0))
    torch.testing.assert_close(only_ce, F.cross_entropy(student, targets))
    t = 2.0
    p_teacher = torch.softmax(teacher_logits / t, -1)
    kl = (p_teacher * (p_teacher.log() - torch.log_softmax(student / t, -1))).sum(-1).mean()
    only_kd = kd_loss(student, teacher_logits, targets, KDWeights(alpha=0.0, beta=0.5, temperature=t))
    torch.testing.assert_close(only_kd, 0.5 * t * t * kl)
    same = kd_loss(student, student, targets, KDWeights(alpha=0.0, beta=1.0))
    assert abs(float(same)) < 1e-6


def test_kd_weights_are_validated():
    with pytest.raises(ValueError, match="temperature"):
        KDWeights(temperature=0)
    with pytest.raises(ValueError, match="beta: alpha and beta must not both be 0"):
        KDWeights(alpha=0, beta=0)


def test_fixed_sample_holds_the_teachers_logits(teacher):
    sample = fixed_sample(toy_blocks(), 3, 5, 9, teacher, ToyTokenizer(), seed=0)
    assert sample.inputs.shape == (3, 5, 9) and len(sample) == 3
    inputs, labels, logits, targets = sample.batch(1)
    assert logits.dtype == torch.float16 and logits.shape == (len(targets), 99)
    torch.testing.assert_close(logits.float(), masked_logits(teacher, inputs, labels), atol=1e-2, rtol=1e-2)
    assert (labels != IGNORE).sum() == len(targets)
    again = fixed_sample(toy_blocks(), 3, 5, 9, teacher, ToyTokenizer(), seed=0)
    assert torch.equal(again.inputs, sample.inputs)
    with pytest.raises(ValueError, match="only 29 available"):
        fixed_sample(toy_blocks(), 6, 5, 9, teacher, ToyTokenizer(), seed=0)


def test_surrogate_error_is_deterministic_and_learns(teacher):
    train = fixed_sample(toy_blocks(), 4, 5, 9, teacher, ToyTokenizer(), seed=0)
    heldout = fixed_sample(toy_blocks(seed=1), 2, 5, 9, teacher, ToyTokenizer(), seed=1)
    w = KDWeights()
    args = (Arch(1, 2, 16, 23), EMB, train, heldout)
    a = surrogate_error(*args, steps=6, lr=3e-3, warmup_steps=1, weights=w, seed=0)
    b = surrogate_error(*args, steps=6, lr=3e-3, warmup_steps=1, weights=w, seed=0)
    assert a["error"] == b["error"] and math.isfinite(a["error"])
    # On the sample it trains on, a few steps must lower the distillation loss.
    fitted = surrogate_error(
        Arch(1, 2, 16, 23), EMB, train, train, steps=12, lr=1e-2, warmup_steps=1, weights=w, seed=0
    )
    untrained = heldout_kd_loss(build_model(Arch(1, 2, 16, 23), EMB, head="mlm", seed=0), train, w)
    assert fitted["error"] < 0.95 * untrained


def test_long_run_is_evaluated_at_the_logged_steps_only(teacher):
    """ê_s of a reference run: held-out loss at each logged s and the end, and the evaluations do
    not change the training (the same losses as a run evaluated at every step)."""
    train = fixed_sample(toy_blocks(), 4, 5, 9, teacher, ToyTokenizer(), seed=0)
    heldout = fixed_sample(toy_blocks(seed=1), 2, 5, 9, teacher, ToyTokenizer(), seed=1)
    arch, weights = Arch.parse("D1-A2-H16-I23"), KDWeights(0.1, 0.5, 2.0)

    def losses(eval_steps):
        _, history = distill_on_sample(arch, EMB, train, heldout, 8, 1e-3, 1, weights, 3, eval_steps)
        return {h["step"]: h["kd_loss"] for h in history if "kd_loss" in h}

    logged = losses([2, 6])
    assert sorted(logged) == [2, 6, 8]
    every = losses(list(range(1, 9)))
    assert sorted(every) == list(range(1, 9))
    assert all(logged[s] == every[s] for s in logged)


def test_surrogate_trains_with_the_pretraining_recipe(teacher, monkeypatch):
    """ê is measured with `ose.training.loop.train`: no weight decay on biases and LayerNorm weights."""
    from ose.training import loop as training

    optimizers = []
    real = training.make_optimizer
    monkeypatch.setattr(training, "make_optimizer", lambda *a: optimizers.append(real(*a)) or optimizers[-1])
    train = fixed_sample(toy_blocks(), 2, 5, 9, teacher, ToyTokenizer(), seed=0)
    result = surrogate_error(Arch(1, 3, 15, 7), EMB, train, train, 3, 3e-3, 1, KDWeights(), seed=0)
    assert set(result) == {"error", "train_loss", "seconds"} and math.isfinite(result["train_loss"])
    (optimizer,) = optimizers
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])


def test_candidates_train_on_the_device_of_their_sample(teacher, monkeypatch):
    """A worker's samples go to its device; ê is the same as training on the sample's CPU copy."""
    from ose.pipeline import distributed

    train = fixed_sample(toy_blocks(), 2, 5, 9, teacher, ToyTokenizer(), seed=0)
    heldout = fixed_sample(toy_blocks(seed=1), 1, 5, 9, teacher, ToyTokenizer(), seed=1)
    moved = train.to("cpu")
    assert moved is not train and torch.equal(moved.inputs, train.inputs)
    assert all(torch.equal(a, b) for a, b in zip(moved.teacher_logits, train.teacher_logits, strict=True))
    args = (Arch(1, 2, 16, 23), EMB)
    kwargs = {"steps": 3, "lr": 3e-3, "warmup_steps": 1, "weights": KDWeights(), "seed": 0}
    assert (
        surrogate_error(*args, moved, heldout, **kwargs)["error"]
        == surrogate_error(*args, train, heldout, **kwargs)["error"]
    )
    with pytest.raises(ValueError, match="held-out sample on meta"):
        surrogate_error(*args, train, heldout.to("meta"), **kwargs)
    # the worker's device: CPU without GPUs, GPU LOCAL_RANK with them (torchrun sets LOCAL_RANK)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.worker_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.worker_device() == torch.device("cuda", 3)
    monkeypatch.delenv("LOCAL_RANK")
    assert distributed.worker_device() == torch.device("cuda", 0)


def make_job(tmp_path, teacher, archs=("D1-A2-H16-I23", "D2-A4-H16-I9", "D1-A3-H15-I7")):
    train = fixed_sample(toy_blocks(), 3, 4, 9, teacher, ToyTokenizer(), seed=0)
    heldout = fixed_sample(toy_blocks(seed=1), 1, 4, 9, teacher, ToyTokenizer(), seed=1)
    torch.save({"train": train.to_dict(), "heldout": heldout.to_dict()}, tmp_path / "sample.pt")
    return SurrogateJob(
        archs=list(archs),
        thetas=[
            {"name": "slow", "lr": 1e-3, "warmup_steps": 0},
            {"name": "fast", "lr": 5e-3, "warmup_steps": 1},
        ],
        sample_path=str(tmp_path / "sample.pt"),
        embedding={"vocab_size": 99, "max_positions": 19, "type_vocab_size": 2},
        steps=3,
        weights={"alpha": 0.1, "beta": 0.5, "temperature": 2.0},
        seed=0,
        shard_dir=str(tmp_path / "shards"),
    )


def test_table_resumes_and_ignores_other_settings(tmp_path, teacher, monkeypatch):
    job = make_job(tmp_path, teacher)
    rows = evaluate_table(job, nproc=1, progress=False)
    assert [(r["arch"], r["theta"]) for r in rows] == [(a, t["name"]) for a in job.archs for t in job.thetas]
    assert (
        FixedSample.from_dict(torch.load(job.sample_path, weights_only=False)["train"]).inputs.shape[0] == 3
    )

    calls = []
    real = surrogate.surrogate_error
    monkeypatch.setattr(surrogate, "surrogate_error", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    again = evaluate_table(job, nproc=1, progress=False)
    assert calls == [] and [r["error"] for r in again] == [r["error"] for r in rows]
    more = SurrogateJob(**{**job.__dict__, "archs": [*job.archs, "D1-A1-H8-I5"]})
    evaluate_table(more, nproc=1, progress=False)
    assert [a.name for a in calls] == ["D1-A1-H8-I5", "D1-A1-H8-I5"]  # one per θ
    other = SurrogateJob(**{**job.__dict__, "steps": 2})
    assert read_shards(other.shard_dir, other.settings_key()) == {}


@pytest.mark.slow
def test_two_torchrun_workers_give_the_same_table(tmp_path, teacher):
    job = make_job(tmp_path, teacher)
    alone = evaluate_table(job, nproc=1, progress=False)
    (tmp_path / "two").mkdir()
    job2 = SurrogateJob(**{**job.__dict__, "shard_dir": str(tmp_path / "two")})
    together = evaluate_table(job2, nproc=2, progress=False)
    assert {r["rank"] for r in together} == {"0", "1"}
    for a, b in zip(alone, together, strict=True):
        assert (a["arch"], a["theta"]) == (b["arch"], b["theta"])
        assert a["error"] == pytest.approx(b["error"], rel=1e-6)


def test_released_term_is_the_released_codes_double_softmax_and_vocabulary_mean():
    """By hand, as MXNet's KLDivLoss(from_logits=False) on softmax probabilities computes it."""
    from ose.training.distill import kd_terms, released_term

    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 11, generator=g), torch.randn(5, 11, generator=g)  # (N, V), odd sizes
    p_s, p_t = torch.softmax(s / 2, -1), torch.softmax(t / 2, -1)
    log_q = p_s - torch.logsumexp(p_s, -1, keepdim=True)  # log_softmax of the probabilities
    by_hand = (
        sum(
            sum(
                float(p_t[n, v]) * (math.log(float(p_t[n, v]) + 1e-12) - float(log_q[n, v]))
                for v in range(11)
            )
            / 11
            for n in range(5)
        )
        / 5
    )
    assert float(released_term(s, t, 2.0)) == pytest.approx(by_hand, rel=1e-5)
    targets = torch.tensor([0, 3, 10, 7, 1])
    ce, kd = kd_terms(s, t, targets, KDWeights(0.1, 0.5, 2.0, form="released"))
    assert float(ce) == pytest.approx(0.1 * float(torch.nn.functional.cross_entropy(s, targets)), rel=1e-6)
    assert float(kd) == pytest.approx(0.5 * 4 * by_hand, rel=1e-5)


def test_grad_norm_ratio_by_autograd_and_released_far_below_textbook():
    from ose.training.distill import grad_norm_ratio, kd_terms

    g = torch.Generator().manual_seed(4)
    model = torch.nn.Linear(7, 13)  # logits of N = 9 tokens over a vocabulary of 13
    with torch.no_grad():
        model.weight.copy_(torch.randn(13, 7, generator=g))
    x, teacher = torch.randn(9, 7, generator=g), 3 * torch.randn(9, 13, generator=g)
    targets = torch.randint(13, (9,), generator=g)

    def by_hand(w: KDWeights) -> float:
        norms = []
        for k in range(2):
            model.zero_grad()
            kd_terms(model(x), teacher, targets, w)[k].backward()
            norms.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters())))
        model.zero_grad()
        return norms[1] / norms[0]

    textbook, released = KDWeights(0.5, 0.5, 2.0), KDWeights(0.1, 0.5, 2.0, form="released")
    ratios = {}
    for name, w in (("textbook", textbook), ("released", released)):
        ratios[name] = grad_norm_ratio(model, lambda w=w: kd_terms(model(x), teacher, targets, w))
        assert ratios[name] == pytest.approx(by_hand(w), rel=1e-5)
        assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # untouched
    assert ratios["released"] < ratios["textbook"] / 10
    assert grad_norm_ratio(model, lambda: kd_terms(model(x), teacher, targets, MLM_ONLY)) == 0.0
