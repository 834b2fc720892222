import pytest
import torch

from ose.arch import Arch, Embedding, build_model
from ose.mlm import IGNORE, evaluate_mlm, mask_tokens, masked_logits, mlm_loss
from ose.training import CHECKPOINT, TrainConfig, linear_schedule, train

EMB = Embedding(vocab_size=99, max_positions=19, type_vocab_size=2)
SPECIAL = [0, 1, 2, 3]  # pad, cls, sep, mask in this toy vocabulary
MASK = 3


def toy_blocks(n=13, length=11, seed=0):
    ids = torch.randint(4, 99, (n, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0], ids[:, -1] = 1, 2
    return ids


def loss_fn(blocks, batch_size=5):
    def fn(model, generator):
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
    train(model, loss_fn(blocks), TrainConfig(steps=30, lr=3e-3, warmup_steps=3), progress=False)
    assert evaluate_mlm(model, blocks, MASK, 99, SPECIAL, seed=1)["mlm_ce"] < before


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    config = TrainConfig(steps=9, lr=1e-3, warmup_steps=2, checkpoint_every=2, seed=3)
    blocks = toy_blocks()
    straight = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    history = train(straight, loss_fn(blocks), config, progress=False)

    resumed = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    train(resumed, loss_fn(blocks), config, tmp_path, progress=False, stop_after=5)  # killed at 5
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["step"] == 4  # last checkpoint
    fresh = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)  # a new process
    history_resumed = train(fresh, loss_fn(blocks), config, tmp_path, progress=False)
    for (name, p), q in zip(straight.named_parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert [h["loss"] for h in history] == [h["loss"] for h in history_resumed]


def test_checkpoint_of_another_run_is_ignored(tmp_path, capsys):
    blocks = toy_blocks()
    model = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    train(model, loss_fn(blocks), TrainConfig(steps=2, lr=1e-3, warmup_steps=0), tmp_path, progress=False)
    other = build_model(Arch(2, 4, 36, 37), EMB, head="mlm", seed=0)
    history = train(
        other, loss_fn(blocks), TrainConfig(steps=3, lr=1e-3, warmup_steps=0), tmp_path, progress=False
    )
    assert "starting over" in capsys.readouterr().out
    assert [h["step"] for h in history] == [1, 2, 3]
