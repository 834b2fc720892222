import pytest
import torch

from ose.arch import Arch, Embedding, build_model
from ose.training.loop import CHECKPOINT, KeepBest, TrainConfig, linear_schedule, train
from ose.training.mlm import IGNORE, evaluate_mlm, mask_tokens, masked_logits, mlm_loss

EMB = Embedding(vocab_size=99, max_positions=19, type_vocab_size=2)
SPECIAL = [0, 1, 2, 3]  # pad, cls, sep, mask in this toy vocabulary
MASK = 3


def toy_blocks(n=13, length=11, seed=0):
    ids = torch.randint(4, 99, (n, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0], ids[:, -1] = 1, 2
    return ids


def loss_fn(blocks, batch_size=5):
    def fn(model, step, generator):
        rows = torch.randint(len(blocks), (batch_size,), generator=generator)
        inputs, labels = mask_tokens(blocks[rows], MASK, 99, SPECIAL, generator)
        return mlm_loss(model, inputs, labels)

    return fn


def test_masking_follows_bert():
    ids = torch.randint(4, 99, (200, 50), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = 1
    inputs, labels = mask_tokens(ids, MASK, 99, SPECIAL, torch.Generator().manual_seed(1))
    chosen = labels != IGNORE
    assert 0.13 < chosen.float().mean() < 0.17
    assert not chosen[:, 0].any(), "special tokens are never chosen"
    assert torch.equal(labels[chosen], ids[chosen])
    assert 0.77 < (inputs[chosen] == MASK).float().mean() < 0.83
    assert 0.07 < (inputs[chosen] == ids[chosen]).float().mean() < 0.13
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_masking_always_chooses_a_token():
    ids = torch.tensor([[1, 50, 2]])
    for seed in range(20):
        _, labels = mask_tokens(ids, MASK, 99, SPECIAL, torch.Generator().manual_seed(seed), 0.01)
        assert (labels != IGNORE).sum() >= 1


def test_logits_only_at_masked_positions():
    model = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    inputs, labels = mask_tokens(toy_blocks(), MASK, 99, SPECIAL, torch.Generator().manual_seed(0))
    logits = masked_logits(model, inputs, labels)
    assert logits.shape == ((labels != IGNORE).sum(), 99)
    full = model(input_ids=inputs).logits  # (B, L, V)
    torch.testing.assert_close(logits, full[labels != IGNORE])


def test_evaluation_is_deterministic():
    model = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    a = evaluate_mlm(model, toy_blocks(), MASK, 99, SPECIAL, batch_size=4, seed=7)
    b = evaluate_mlm(model, toy_blocks(), MASK, 99, SPECIAL, batch_size=4, seed=7)
    c = evaluate_mlm(model, toy_blocks(), MASK, 99, SPECIAL, batch_size=4, seed=8)
    assert a["masked_tokens"] > 0 and 0 <= a["masked_acc"] <= 1
    assert a == b
    assert a != c, "another seed masks other tokens"


def test_evaluation_masks_once_whatever_the_batch_size():
    model = build_model(Arch(2, 3, 15, 7), EMB, head="mlm", seed=0)
    blocks = toy_blocks(n=13)  # 13 = 4·3 + 1 = 7 + 6: both batch sizes leave a short last batch
    small = evaluate_mlm(model, blocks, MASK, 99, SPECIAL, batch_size=3, seed=5)
    large = evaluate_mlm(model, blocks, MASK, 99, SPECIAL, batch_size=7, seed=5)
    whole = evaluate_mlm(model, blocks, MASK, 99, SPECIAL, batch_size=13, seed=5)
    assert small["masked_tokens"] == large["masked_tokens"] == whole["masked_tokens"]
    assert small["masked_acc"] == large["masked_acc"] == whole["masked_acc"]
    assert small["mlm_ce"] == pytest.approx(large["mlm_ce"], rel=1e-6)
    assert small["mlm_ce"] == pytest.approx(whole["mlm_ce"], rel=1e-6)
    # the masking is that of all the blocks at once, with one generator seeded by `seed`
    _, labels = mask_tokens(blocks, MASK, 99, SPECIAL, torch.Generator().manual_seed(5))
    assert small["masked_tokens"] == (labels != IGNORE).sum()


def test_schedule_warms_up_then_decays_to_zero():
    f = linear_schedule(3, 10)
    assert [round(f(s), 3) for s in range(3)] == [0.333, 0.667, 1.0]
    assert f(9) == pytest.approx(1 / 7) and f(10) == 0.0


def test_config_is_validated():
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(steps=5, lr=1e-3, warmup_steps=6)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0, lr=1e-3, warmup_steps=0)


def test_training_lowers_the_loss():
    model = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    blocks = toy_blocks()
    before = evaluate_mlm(model, blocks, MASK, 99, SPECIAL, seed=1)["mlm_ce"]
    train(model, loss_fn(blocks), TrainConfig(steps=30, lr=3e-3, warmup_steps=3), 0, progress=False)
    assert evaluate_mlm(model, blocks, MASK, 99, SPECIAL, seed=1)["mlm_ce"] < before


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    config, seed = TrainConfig(steps=9, lr=1e-3, warmup_steps=2, checkpoint_every=2), 3
    blocks = toy_blocks()
    straight = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    history = train(straight, loss_fn(blocks), config, seed, progress=False)

    resumed = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    train(resumed, loss_fn(blocks), config, seed, tmp_path, progress=False, stop_after=5)  # killed at 5
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["step"] == 4  # last checkpoint
    fresh = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)  # a new process
    history_resumed = train(fresh, loss_fn(blocks), config, seed, tmp_path, progress=False)
    for (name, p), q in zip(straight.named_parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert [h["loss"] for h in history] == [h["loss"] for h in history_resumed]


def test_checkpoint_of_another_run_is_ignored(tmp_path, capsys):
    blocks = toy_blocks()
    model = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    train(model, loss_fn(blocks), TrainConfig(steps=2, lr=1e-3, warmup_steps=0), 0, tmp_path, progress=False)
    other = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    history = train(
        other, loss_fn(blocks), TrainConfig(steps=3, lr=1e-3, warmup_steps=0), 0, tmp_path, progress=False
    )
    assert "starting over" in capsys.readouterr().out
    assert [h["step"] for h in history] == [1, 2, 3]


def test_checkpoint_of_other_code_is_not_resumed(tmp_path, capsys, monkeypatch):
    """A persisted checkpoint outlives a code change that DVC re-runs the stage for."""
    from ose.training import loop as training

    blocks, config = toy_blocks(), TrainConfig(steps=3, lr=1e-3, warmup_steps=0, checkpoint_every=1)
    model = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    train(model, loss_fn(blocks), config, 0, tmp_path, progress=False, stop_after=2)
    monkeypatch.setattr(training, "source_digest", lambda *modules: "edited")
    history = train(model, loss_fn(blocks), config, 0, tmp_path, progress=False)
    out = capsys.readouterr().out
    assert "starting over" in out and "(code)" in out
    assert [h["step"] for h in history] == [1, 2, 3]


def test_loss_sees_the_step_index_and_its_generator():
    """A loss can pick a fixed batch by step; its generator and dropout are those of the step."""
    seen = []

    def fn(model, step, generator):
        seen.append((step, torch.randint(10**6, (1,), generator=generator).item(), torch.rand(1).item()))
        return mlm_loss(model, *mask_tokens(toy_blocks()[step : step + 2], MASK, 99, SPECIAL, generator))

    model = build_model(Arch(1, 3, 15, 7), EMB, head="mlm", seed=0)
    train(model, fn, TrainConfig(steps=4, lr=1e-3), 7, progress=False)
    again = seen[:]
    seen.clear()
    train(
        build_model(Arch(1, 3, 15, 7), EMB, head="mlm", seed=0),
        fn,
        TrainConfig(steps=4, lr=1e-3),
        7,
        progress=False,
    )
    assert [s for s, _, _ in seen] == [0, 1, 2, 3]
    assert seen == again, "same seed: same generators and dropout noise at every step"
    assert len({g for _, g, _ in seen}) == 4 and len({d for _, _, d in seen}) == 4, "each step its own"


def test_on_evaluate_keeps_the_best_state_and_stops_early():
    blocks = toy_blocks()
    scores = iter([0.5, 0.7, 0.6, float("nan"), 0.9])  # stale after step 4: 0.6 and NaN
    states = {}

    def evaluate(model):
        return {"score": next(scores)}

    selector = KeepBest("score", patience=2)

    def on_evaluate(model, entry):
        states[entry["step"]] = {k: v.clone() for k, v in model.state_dict().items()}
        return selector(model, entry)

    model = build_model(Arch(1, 3, 15, 7), EMB, head="mlm", seed=0)
    config = TrainConfig(steps=10, lr=3e-3, eval_every=2)
    history = train(
        model, loss_fn(blocks), config, 0, evaluate=evaluate, progress=False, on_evaluate=on_evaluate
    )
    assert [h["step"] for h in history if "score" in h] == [2, 4, 6, 8]
    assert history[-1]["step"] == 8 and sum("loss" in h for h in history) == 8, "stopped after step 8"
    assert selector.stopped and selector.best_step == 4 and selector.best_score == 0.7
    assert not all(torch.equal(v, states[4][k]) for k, v in model.state_dict().items())
    selector.restore(model)
    assert all(torch.equal(v, states[4][k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train(model, loss_fn(blocks), config, 0, "somewhere", evaluate, on_evaluate=on_evaluate)


def test_keep_best_never_stops_without_patience_and_ignores_nan():
    selector = KeepBest("m")
    model = torch.nn.Linear(2, 1)
    assert not any(selector(model, {"step": s, "m": float("nan")}) for s in (1, 2, 3))
    assert selector.best_state is None and selector.best_step == 0
    selector.restore(model)  # nothing to restore: the model is left as it is
    assert not selector(model, {"step": 4, "m": 0.1}) and selector.best_step == 4
