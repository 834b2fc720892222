import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertForMaskedLM, BertModel

from ose.arch import PRESETS, Arch, ArchError, Embedding, build_model, preset, to_bert_config
from ose.search.abnc import analytic_conditions
from ose.search.objectives import (
    head_matmul_flops,
    layer_matmul_flops,
    op_count,
    param_count,
)


def numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_bert_large_and_base_counts():
    assert param_count(preset("bert-large").arch).total == 335_141_888
    assert param_count(preset("bert-base").arch).total == 109_482_240
    assert param_count(preset("bert-base").arch, head="none").total == 109_482_240 - (768 * 768 + 768)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_counts_equal_pytorch(name):
    p = PRESETS[name]
    assert param_count(p.arch, p.embedding).total == numel(build_model(p.arch, p.embedding))


def random_architectures(n: int, seed: int = 0):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        heads = rng.choice([1, 2, 3, 4, 5, 6, 7])
        arch = Arch(rng.randint(1, 4), heads, heads * rng.randint(1, 13), rng.randint(1, 67))
        emb = Embedding(rng.randint(5, 131), rng.randint(7, 41), rng.choice([0, 1, 2, 3]))
        out.append((arch, emb, rng.choice(["pooler", "none", "mlm"])))
    return out


@pytest.mark.parametrize("arch,emb,head", random_architectures(60))
def test_analytic_count_equals_pytorch_on_odd_architectures(arch, emb, head):
    counts = param_count(arch, emb, head)
    model = build_model(arch, emb, head=head)
    assert counts.total == numel(model)
    body = model.bert if head == "mlm" else model
    assert counts.embedding == numel(body.embeddings)
    assert counts.layer == numel(body.encoder.layer[0])
    assert counts.encoder == numel(body.encoder)


@pytest.mark.parametrize("head", ["none", "pooler", "mlm"])
@pytest.mark.parametrize(
    "arch,emb,seq_len",
    [(Arch(2, 4, 36, 37), Embedding(99, 19, 2), 7), (Arch(3, 3, 15, 11), Embedding(31, 13, 1), 13)],
)
def test_matmul_flops_equal_torch_flop_counter(arch, emb, seq_len, head):
    config = to_bert_config(arch, emb)
    config._attn_implementation = "eager"  # the CPU SDPA kernel is invisible to FlopCounterMode
    model = (
        BertForMaskedLM(config) if head == "mlm" else BertModel(config, add_pooling_layer=head == "pooler")
    ).eval()
    batch = 5
    ids = torch.randint(0, emb.vocab_size, (batch, seq_len))
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(ids)
    expected = arch.depth * layer_matmul_flops(arch, seq_len) + head_matmul_flops(arch, seq_len, emb, head)
    assert counter.get_total_flops() == batch * expected


def test_op_count_is_dominated_by_matmuls_and_grows_with_every_dimension():
    base = Arch(4, 8, 512, 1024)
    ops = op_count(base, 128).total
    assert op_count(Arch(5, 8, 512, 1024), 128).total > ops
    assert op_count(Arch(4, 16, 512, 1024), 128).total > ops  # softmax over more heads
    assert op_count(Arch(4, 8, 768, 1024), 128).total > ops
    assert op_count(Arch(4, 8, 512, 3072), 128).total > ops
    assert op_count(base, 256).total > ops
    matmul = base.depth * layer_matmul_flops(base, 128)
    assert 0.9 < matmul / op_count(base, 128, head="none").total < 1.0


def test_op_count_rejects_bad_lengths():
    with pytest.raises(ArchError, match="seq_len"):
        op_count(Arch(2, 4, 36, 37), 0)
    with pytest.raises(ArchError, match="max_positions"):
        op_count(Arch(2, 4, 36, 37), 1024)


def test_abnc_conditions_are_computed_not_assumed():
    arch = preset("all-MiniLM-L6-v2").arch
    conditions = analytic_conditions(arch, 128)
    assert conditions == {
        "p_A_le_B": False,
        "i_A_le_B": True,
        "p_C_le_B": True,
        "i_C_le_B": True,
        "p_Cmlm_le_B": True,  # the decoder is tied to the word embeddings
        "i_Cmlm_le_B": False,  # scoring a 30,522-word vocabulary costs more than a layer
    }
