import torch
from transformers import AutoTokenizer

from ose.arch import Arch, Embedding, build_model
from ose.pipeline.fingerprint import mapping_digest, state_digest, tensor_digest, tokenizer_digest
from ose.training.source_model import save_pretrained

EMB = Embedding(vocab_size=99, max_positions=11, type_vocab_size=2)


def test_tensor_digest_tells_values_dtype_and_shape_apart():
    a = torch.arange(10)
    assert tensor_digest(a) == tensor_digest(torch.arange(10))
    assert tensor_digest(a) != tensor_digest(torch.arange(1, 11))
    assert tensor_digest(a) != tensor_digest(a.int())
    assert tensor_digest(a) != tensor_digest(a.reshape(2, 5))
    assert tensor_digest(torch.ones(3, dtype=torch.bfloat16)) != tensor_digest(
        torch.zeros(3, dtype=torch.bfloat16)
    )


def test_state_digest_sees_every_weight():
    model = build_model(Arch(1, 2, 6, 5), EMB, head="mlm", seed=0)
    before = state_digest(model)
    assert state_digest(build_model(Arch(1, 2, 6, 5), EMB, head="mlm", seed=0)) == before
    with torch.no_grad():
        model.bert.encoder.layer[0].output.LayerNorm.bias[3] += 1e-3  # one number, deep inside
    assert state_digest(model) != before


def test_tokenizer_digest_survives_a_save(tmp_path, minilm_path):
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    save_pretrained(build_model(Arch(1, 2, 6, 5), EMB, head="mlm", seed=0), tokenizer, tmp_path / "a")
    assert tokenizer_digest(tokenizer) == tokenizer_digest(AutoTokenizer.from_pretrained(tmp_path / "a"))


def test_mapping_digest_ignores_key_order():
    assert mapping_digest({"a": 1, "b": [2, 3]}) == mapping_digest({"b": [2, 3], "a": 1})
    assert mapping_digest({"a": 1}) != mapping_digest({"a": 2})


def test_source_digest_names_the_code():
    from ose.pipeline.fingerprint import source_digest
    from ose.training import loop as training
    from ose.training import mlm

    assert source_digest(training, mlm) == source_digest(mlm, training)
    assert source_digest(training) != source_digest(mlm)
