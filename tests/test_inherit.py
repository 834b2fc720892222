import math

import pytest
import torch
from transformers import AutoModelForMaskedLM, RobertaConfig, RobertaForMaskedLM

from ose.arch import Arch, ArchError, Embedding, build_model
from ose.training.inherit import (
    Importance,
    head_dimensions,
    inherit,
    kept_layers,
    measure_importance,
    slice_source,
)

# Odd sizes so that a transposed or mis-sliced dimension cannot pass: head size 6, 3 heads.
SOURCE = Arch(depth=3, heads=3, hidden=18, intermediate=21)
EMBEDDING = Embedding(vocab_size=53, max_positions=16, type_vocab_size=2)


def randomised_source() -> torch.nn.Module:
    """The tiny source with every parameter random (LayerNorms and biases included), decoder tied."""
    model = build_model(SOURCE, EMBEDDING, head="mlm", seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model


@pytest.fixture
def source():
    return randomised_source()


@pytest.fixture
def calibration():
    return torch.randint(EMBEDDING.vocab_size, (7, 11), generator=torch.Generator().manual_seed(2))


def logits(model, ids):
    token_types = (torch.arange(ids.shape[1]) >= ids.shape[1] // 2).long().expand_as(ids)
    with torch.no_grad():
        return model(input_ids=ids, token_type_ids=token_types).logits  # (B, L, V)


@pytest.mark.parametrize("layers", ["bottom", "every_k"])
def test_inheriting_the_source_xi_reproduces_its_logits(source, calibration, layers):
    student = inherit(source, SOURCE, calibration, layers=layers)
    torch.testing.assert_close(logits(student, calibration), logits(source, calibration), atol=1e-5, rtol=0)
    assert student.bert.embeddings.word_embeddings.weight.data_ptr() != (
        source.bert.embeddings.word_embeddings.weight.data_ptr()
    ), "the student must own a copy, not share the source's storage"


def test_sliced_model_is_what_build_model_gives_and_round_trips(source, calibration, tmp_path):
    xi = Arch(depth=2, heads=2, hidden=12, intermediate=10)
    student = inherit(source, xi, calibration)
    fresh = build_model(xi, EMBEDDING, head="mlm", seed=0)
    assert type(student) is type(fresh)
    assert student.config.to_dict() == fresh.config.to_dict()
    ours, theirs = student.state_dict(), fresh.state_dict()
    assert list(ours) == list(theirs)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    assert student.cls.predictions.decoder.weight is student.bert.embeddings.word_embeddings.weight
    assert not student.training

    student.save_pretrained(tmp_path)
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(student)
    torch.testing.assert_close(logits(loaded, calibration), logits(student, calibration), atol=1e-6, rtol=0)


def test_a_dominant_head_is_kept_and_a_zeroed_head_dropped(source, calibration):
    attention = source.bert.encoder.layer[0].attention
    head_size = SOURCE.head_size
    with torch.no_grad():
        attention.self.value.weight[2 * head_size :] *= 20  # head 2 writes the most
        attention.self.value.bias[2 * head_size :] *= 20
        attention.self.value.weight[:head_size] = 0  # head 0 writes nothing
        attention.self.value.bias[:head_size] = 0
    importance = measure_importance(source, calibration, layers=(0,))
    assert importance.head_order[0][0] == 2
    assert importance.head_order[0][-1] == 0
    assert importance.head_scores[0][0] == 0.0

    student = slice_source(source, Arch(1, 1, 6, 21), importance)  # one head of the source's size
    hidden = sorted(importance.hidden_order[:6])
    torch.testing.assert_close(
        student.bert.encoder.layer[0].attention.self.value.weight,
        attention.self.value.weight[2 * head_size :][:, hidden],
    )
    student = slice_source(source, Arch(1, 2, 12, 21), importance)  # keeps heads 1 and 2, in that order
    hidden = sorted(importance.hidden_order[:12])
    expected = attention.self.query.weight[head_size:][:, hidden]
    torch.testing.assert_close(student.bert.encoder.layer[0].attention.self.query.weight, expected)


def test_a_dominant_neuron_is_kept_and_a_zeroed_neuron_dropped(source, calibration):
    layer = source.bert.encoder.layer[1]
    with torch.no_grad():
        layer.output.dense.weight[:, 17] *= 50  # neuron 17 writes the most
        layer.intermediate.dense.weight[4] = 0  # neuron 4 is always GELU(0) = 0
        layer.intermediate.dense.bias[4] = 0
    importance = measure_importance(source, calibration, layers=(0, 1))
    assert importance.neuron_order[1][0] == 17
    assert importance.neuron_scores[1][4] == 0.0
    assert importance.neuron_order[1][-1] == 4

    student = slice_source(source, Arch(2, 3, 18, 20), importance)
    kept = [j for j in range(SOURCE.intermediate) if j != 4]
    torch.testing.assert_close(
        student.bert.encoder.layer[1].intermediate.dense.weight, layer.intermediate.dense.weight[kept]
    )
    torch.testing.assert_close(
        student.bert.encoder.layer[1].output.dense.weight, layer.output.dense.weight[:, kept]
    )


def test_a_dominant_hidden_dimension_is_kept_and_a_zeroed_one_dropped(source, calibration):
    norms = [source.bert.embeddings.LayerNorm] + [
        norm
        for layer in source.bert.encoder.layer
        for norm in (layer.attention.output.LayerNorm, layer.output.LayerNorm)
    ]
    with torch.no_grad():
        for norm in norms:
            norm.weight[13] *= 30  # dimension 13 is the largest in the residual stream
            norm.bias[13] *= 30
            norm.weight[5] = 0  # dimension 5 is always zero there
            norm.bias[5] = 0
    importance = measure_importance(source, calibration, layers=(0, 1, 2))
    assert importance.hidden_order[0] == 13
    assert importance.hidden_order[-1] == 5
    assert importance.hidden_scores[5] == 0.0

    student = slice_source(source, Arch(3, 3, 17 - 2, 21), importance)  # H=15, head size 5 (approximate)
    hidden = sorted(importance.hidden_order[:15])
    assert 13 in hidden and 5 not in hidden
    torch.testing.assert_close(
        student.bert.embeddings.word_embeddings.weight,
        source.bert.embeddings.word_embeddings.weight[:, hidden],
    )
    torch.testing.assert_close(
        student.cls.predictions.transform.dense.weight,
        source.cls.predictions.transform.dense.weight[hidden][:, hidden],
    )
    torch.testing.assert_close(student.cls.predictions.bias, source.cls.predictions.bias)


def test_orders_break_ties_by_index_and_inheritance_is_deterministic(source, calibration):
    tied = Importance(
        layers=(0,),
        head_scores=((1.0, 2.0, 2.0),),
        neuron_scores=((0.0, 0.0),),
        hidden_scores=(3.0, 3.0, 5.0),
        tokens=1,
    )
    assert tied.head_order == ((1, 2, 0),)
    assert tied.neuron_order == ((0, 1),)
    assert tied.hidden_order == (2, 0, 1)

    rng = torch.get_rng_state()
    first = inherit(source, Arch(2, 2, 12, 10), calibration).state_dict()
    second = inherit(source, Arch(2, 2, 12, 10), calibration).state_dict()
    assert torch.equal(torch.get_rng_state(), rng), "inheritance must not move the caller's random stream"
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_every_k_picks_the_last_layer_of_each_group():
    assert kept_layers(6, 3, "every_k") == (1, 3, 5)
    assert kept_layers(6, 2, "every_k") == (2, 5)
    assert kept_layers(6, 2, "every_k", every=2) == (1, 3)
    assert kept_layers(7, 3, "every_k") == (1, 3, 5)
    assert kept_layers(6, 6, "every_k") == tuple(range(6))
    assert kept_layers(6, 2, "bottom") == (0, 1)
    with pytest.raises(ArchError, match="depth D=7 exceeds the source's depth 6"):
        kept_layers(6, 7, "bottom")


def test_every_k_copies_the_documented_layers(source, calibration):
    student = inherit(source, Arch(1, 3, 18, 21), calibration, layers="every_k")  # k = 3: layer 2
    torch.testing.assert_close(
        student.bert.encoder.layer[0].output.dense.weight, source.bert.encoder.layer[2].output.dense.weight
    )
    student = inherit(source, Arch(1, 3, 18, 21), calibration, layers="every_k", every=2)  # layer 1
    torch.testing.assert_close(
        student.bert.encoder.layer[0].output.dense.weight, source.bert.encoder.layer[1].output.dense.weight
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(arch=Arch(4, 3, 18, 21)),
            ArchError,
            "depth of ξ=D4-A3-H18-I21 is 4, larger than the source's 3",
        ),
        (dict(arch=Arch(2, 3, 18, 21), layers="every_k", every=2), ArchError, "every=2 with depth D=2"),
        (dict(arch=Arch(2, 3, 18, 21), layers="top"), ValueError, "layers must be one of"),
        (dict(arch=Arch(2, 3, 18, 21), every=1), ValueError, "only used with layers='every_k'"),
        (dict(arch=Arch(2, 3, 18, 21), layers="every_k", every=0), ValueError, "every must be a positive"),
        (dict(arch=Arch(2, 2, 20, 21)), ArchError, "hidden of ξ=D2-A2-H20-I21 is 20"),
        (dict(arch=Arch(2, 3, 18, 22)), ArchError, "intermediate of ξ=D2-A3-H18-I22"),
        (dict(arch=Arch(2, 2, 16, 21)), ArchError, "need 4 source heads of size 6"),
    ],
)
def test_invalid_requests_fail_clearly(source, calibration, kwargs, error, match):
    with pytest.raises(error, match=match):
        inherit(source, calibration_ids=calibration, **kwargs)


def test_bad_calibration_ids_fail_clearly(source):
    with pytest.raises(ValueError, match=r"must lie in \[0, 53\)"):
        inherit(source, Arch(1, 3, 18, 21), torch.full((2, 5), 53))
    with pytest.raises(ValueError, match=r"\(B, L\) tensor"):
        inherit(source, Arch(1, 3, 18, 21), torch.zeros(5, dtype=torch.long))


def test_unsupported_sources_are_refused(calibration):
    encoder_only = build_model(SOURCE, EMBEDDING, head="none")
    with pytest.raises(TypeError, match="supports BertForMaskedLM sources .* got BertModel"):
        inherit(encoder_only, Arch(1, 3, 18, 21), calibration)
    roberta = RobertaForMaskedLM(
        RobertaConfig(
            vocab_size=53, hidden_size=18, num_hidden_layers=1, num_attention_heads=3, intermediate_size=21
        )
    )
    with pytest.raises(TypeError, match="got RobertaForMaskedLM"):
        inherit(roberta, Arch(1, 3, 18, 21), calibration)
    relu = randomised_source()
    relu.config.hidden_act = "relu"
    with pytest.raises(ValueError, match="hidden_act='relu' differs"):
        inherit(relu, Arch(1, 3, 18, 21), calibration)


def test_head_dimensions_truncate_or_merge_the_kept_heads():
    order = (2, 0, 1)  # head 2 most important, then 0, then 1
    assert head_dimensions(order, 6, 3, 6).tolist() == list(range(18))
    assert head_dimensions(order, 6, 2, 6).tolist() == [*range(0, 6), *range(12, 18)]
    assert head_dimensions(order, 6, 3, 3).tolist() == [0, 1, 2, 6, 7, 8, 12, 13, 14]
    assert head_dimensions(order, 6, 1, 12).tolist() == [*range(0, 6), *range(12, 18)]
    assert head_dimensions(order, 6, 1, 9).tolist() == [*range(0, 6), 12, 13, 14]


@pytest.mark.parametrize("xi", [Arch(2, 1, 12, 10), Arch(2, 3, 9, 10), Arch(1, 2, 8, 7)])
def test_a_head_size_change_builds_and_runs(source, calibration, xi):
    assert xi.head_size != SOURCE.head_size
    importance = measure_importance(source, calibration, layers=tuple(range(xi.depth)))
    student = slice_source(source, xi, importance)
    out = logits(student, calibration)
    assert out.shape == (*calibration.shape, EMBEDDING.vocab_size)
    assert torch.isfinite(out).all()
    hidden = sorted(importance.hidden_order[: xi.hidden])
    dims = head_dimensions(importance.head_order[0], SOURCE.head_size, xi.heads, xi.head_size)
    scale = math.sqrt(xi.head_size / SOURCE.head_size)  # keeps the source's 1/√d_s logit scale
    theirs = source.bert.encoder.layer[0].attention.self
    mine = student.bert.encoder.layer[0].attention.self
    torch.testing.assert_close(mine.query.weight, theirs.query.weight[dims][:, hidden] * scale)
    torch.testing.assert_close(mine.key.weight, theirs.key.weight[dims][:, hidden])
    torch.testing.assert_close(
        student.bert.encoder.layer[0].attention.output.dense.weight,
        source.bert.encoder.layer[0].attention.output.dense.weight[hidden][:, dims],
    )
