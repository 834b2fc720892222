"""The paper profile's path with a RoBERTa-style source, on a tiny RoBERTa built offline.

profiles/paper.yaml names `FacebookAI/roberta-large` (byte-level BPE, <s>/</s> specials, position
ids offset by the padding index, one token type, no [CLS]/[SEP]) and GLUE tasks read from a local
TSV folder. Neither can be downloaded here, so a module fixture trains a byte-level BPE tokenizer on
a few hundred lines and saves a `RobertaForMaskedLM` of an odd tiny size with `save_pretrained`;
then every stage's computation runs for a step or two on it: teacher loading and masked-LM
adaptation, block packing, the FPTAS's surrogate error, distillation pretraining of a student, and
the fine-tuning comparison with Agora on a GLUE pair task and on the regression task STS-B.
"""

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import AutoTokenizer, RobertaConfig, RobertaForMaskedLM, RobertaTokenizerFast

from ose.arch import Arch, Embedding
from ose.configs import MaskedLMTraining
from ose.data import prepare as data
from ose.data.glue import read_glue_task
from ose.finetuning.classifier import FineTuneConfig, encode_frame, fine_tune, load_encoder
from ose.finetuning.comparison import compare_on_task
from ose.finetuning.effects import ARMS
from ose.finetuning.generator import NearestNeighbourSubstitution, input_embeddings
from ose.search.extraction import load_teacher
from ose.training.distill import KDWeights, fixed_sample, surrogate_error
from ose.training.mlm import IGNORE, mask_tokens
from ose.training.pretraining import PretrainJob, check_loads, final_evaluation, launch
from ose.training.source_model import (
    adapt,
    check_architecture,
    heldout_evaluator,
    load_masked_lm,
    special_ids,
)

GLUE = Path(__file__).parent / "fixtures" / "glue"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4
SOURCE = Arch(depth=2, heads=2, hidden=24, intermediate=40)
MAX_POSITIONS = 66  # RoBERTa: 64 tokens, positions start after the padding index (1)
BLOCK = MAX_POSITIONS - 2
STUDENT = Arch(depth=1, heads=2, hidden=12, intermediate=20)

SUBJECTS = ["the cat", "a dog", "my neighbour", "the old teacher", "every student", "the weapons inspector"]
VERBS = ["reads", "finds", "sees", "likes", "writes about", "celebrates"]
OBJECTS = ["a long book", "the river", "Iraq", "a small house", "the new pope", "three apples"]


def text_lines() -> list[str]:
    """Every sentence of the GLUE fixture, and seeded generated sentences: a few hundred lines."""
    lines = []
    for path in sorted(GLUE.glob("*/*.tsv")):
        for row in path.read_text(encoding="utf-8-sig").splitlines():
            lines += [field for field in row.split("\t") if len(field.split()) > 2]
    rng = np.random.default_rng(0)
    for _ in range(300):
        lines.append(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}, "
            f"and {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
        )
    return lines


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory) -> Path:
    """A tiny RoBERTa masked LM and its byte-level BPE tokenizer, saved with `save_pretrained`."""
    directory = tmp_path_factory.mktemp("tiny-roberta")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(text_lines(), vocab_size=420, min_frequency=2, special_tokens=SPECIALS)
    files = tmp_path_factory.mktemp("bpe")
    bpe.save_model(str(files))
    tokenizer = RobertaTokenizerFast(
        vocab=str(files / "vocab.json"),
        merges=str(files / "merges.txt"),
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=BLOCK,
    )
    assert tokenizer.convert_tokens_to_ids(SPECIALS) == [0, 1, 2, 3, 4]
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=SOURCE.hidden,
        num_hidden_layers=SOURCE.depth,
        num_attention_heads=SOURCE.heads,
        intermediate_size=SOURCE.intermediate,
        max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    RobertaForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def blocks(roberta_dir) -> dict[str, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(roberta_dir)
    lines = text_lines()
    return {
        "train": data.pack_blocks(lines[40:], tokenizer, BLOCK, progress=False),
        "heldout": data.pack_blocks(lines[:40], tokenizer, BLOCK, progress=False),
    }


def test_teacher_loads_as_roberta_and_adapts(roberta_dir, blocks):
    model, tokenizer = load_masked_lm(str(roberta_dir))
    assert type(model).__name__ == "RobertaForMaskedLM"
    assert check_architecture(model, SOURCE.name) == SOURCE
    with pytest.raises(ValueError, match="source.arch"):
        check_architecture(model, "D2-A2-H24-I48")
    _, _, arch, embedding = load_teacher(roberta_dir)
    assert arch == SOURCE
    assert embedding == Embedding(len(tokenizer), MAX_POSITIONS, 1)

    # packed blocks are <s> … </s>, documents separated by </s>, never padded
    for split in ("train", "heldout"):
        assert blocks[split].shape[1] == BLOCK and len(blocks[split]) >= 2
        assert (blocks[split][:, 0] == tokenizer.cls_token_id).all()
        assert (blocks[split][:, -1] == tokenizer.sep_token_id).all()
        assert not (blocks[split] == tokenizer.pad_token_id).any()
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id) == (0, 2)

    # the masking never picks a special token
    specials = special_ids(tokenizer)
    assert set(specials) == {0, 1, 2, 3, 4}
    generator = torch.Generator().manual_seed(0)
    inputs, labels = mask_tokens(
        blocks["train"], tokenizer.mask_token_id, len(tokenizer), specials, generator
    )
    chosen = labels != IGNORE
    assert chosen.any()
    assert not torch.isin(blocks["train"][chosen], torch.tensor(specials)).any()
    assert (inputs[~chosen] == blocks["train"][~chosen]).all()
    assert (inputs == tokenizer.mask_token_id).sum() > 0

    evaluate = heldout_evaluator(blocks["heldout"], tokenizer, 4, seed=0)
    before = evaluate(model)
    assert before["masked_tokens"] > 0 and math.isfinite(before["mlm_ce"])
    assert before["mlm_ce"] == pytest.approx(math.log(len(tokenizer)), rel=0.2)  # untrained
    config = MaskedLMTraining(
        steps=3, lr=1e-3, warmup_steps=0, batch_size=4, eval_every=0, checkpoint_every=0
    )
    history = adapt(model, tokenizer, blocks["train"], config, 0, None, None, progress=False)
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    after = evaluate(model)
    assert after["masked_tokens"] == before["masked_tokens"]  # same masking
    assert 0.0 <= after["masked_acc"] <= 1.0 and math.isfinite(after["mlm_ce"])


def test_surrogate_error_of_a_student(roberta_dir, blocks):
    teacher, tokenizer, _, embedding = load_teacher(roberta_dir)
    train = fixed_sample(blocks["train"], 2, 2, 16, teacher, tokenizer, seed=0)
    heldout = fixed_sample(blocks["heldout"], 1, 2, 16, teacher, tokenizer, seed=1)
    assert train.inputs.shape == (2, 2, 16)
    assert (train.inputs[..., 0] == tokenizer.cls_token_id).all()
    assert (train.inputs[..., -1] == tokenizer.sep_token_id).all()  # the window is closed with </s>
    assert train.teacher_logits[0].shape == ((train.labels[0] != IGNORE).sum(), len(tokenizer))
    result = surrogate_error(STUDENT, embedding, train, heldout, 2, 1e-3, 0, KDWeights(), seed=0)
    assert math.isfinite(result["error"]) and result["error"] > 0
    assert math.isfinite(result["train_loss"])
    again = surrogate_error(STUDENT, embedding, train, heldout, 2, 1e-3, 0, KDWeights(), seed=0)
    assert again["error"] == pytest.approx(result["error"])


@pytest.fixture(scope="module")
def student_dir(roberta_dir, blocks, tmp_path_factory) -> Path:
    """The student after two steps of distillation pretraining against the tiny RoBERTa."""
    root = tmp_path_factory.mktemp("pretrain")
    data.save_blocks(root / "corpus", blocks, {"sources": []})
    _, _, _, embedding = load_teacher(roberta_dir)
    job = PretrainJob(
        arch=STUDENT.name,
        embedding=asdict(embedding),
        teacher_dir=str(roberta_dir),
        corpus_dir=str(root / "corpus"),
        out_dir=str(root / "student"),
        checkpoint_dir=str(root / "checkpoints"),
        config={"steps": 2, "lr": 1e-3, "batch_size": 4, "eval_every": 1, "eval_blocks": 4},
        seed=0,
        weights=asdict(KDWeights()),
    )
    history = launch(job, nproc=1, progress=False)
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    final = final_evaluation(history)
    assert 0.0 <= final["masked_acc"] <= 1.0 and math.isfinite(final["mlm_ce"])
    return root / "student"


def test_pretrained_student_keeps_the_teachers_vocabulary(roberta_dir, student_dir):
    assert check_loads(student_dir) == STUDENT
    teacher, teacher_tokenizer, _, teacher_embedding = load_teacher(roberta_dir)
    student, tokenizer, _, embedding = load_teacher(student_dir)
    assert embedding.vocab_size == teacher_embedding.vocab_size == len(teacher_tokenizer)
    assert tokenizer.get_vocab() == teacher_tokenizer.get_vocab()
    assert student.get_input_embeddings().weight.shape == (len(tokenizer), STUDENT.hidden)
    ids = tokenizer("the cat reads a long book", return_tensors="pt")["input_ids"]
    assert student(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_pair_inputs_use_robertas_separators(roberta_dir):
    tokenizer = AutoTokenizer.from_pretrained(roberta_dir)
    task = read_glue_task(GLUE, "rte", dev_fraction=3 / 7, seed=0)
    encoded = encode_frame(tokenizer, task.train, max_len=BLOCK)
    assert encoded.token_type_ids is None and encoded.pad_id == tokenizer.pad_token_id
    pairs = task.train[["text_a", "text_b"]].itertuples(index=False)
    for (a, b), ids in zip(pairs, encoded.input_ids, strict=True):
        a_ids = tokenizer(a, add_special_tokens=False)["input_ids"]
        b_ids = tokenizer(b, add_special_tokens=False)["input_ids"]
        assert ids == [0, *a_ids, 2, 2, *b_ids, 2]  # <s> A </s></s> B </s>
    batch = encoded.batch([0, 1])
    assert set(batch) == {"input_ids", "attention_mask"}
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("task_name", ["rte", "stsb"])
def test_comparison_on_glue(roberta_dir, student_dir, task_name):
    teacher, tokenizer, _, _ = load_teacher(roberta_dir)
    task = read_glue_task(GLUE, task_name, dev_fraction=0.4, seed=0)
    generator = NearestNeighbourSubstitution(
        tokenizer, input_embeddings(teacher), k=3, fraction=0.3, n_new=1, max_tokens=32
    )
    config = FineTuneConfig(epochs=1, batch_size=2, lr=1e-3, max_len=32)
    thetas = [{"name": "slow", "lr": 1e-4}, {"name": "fast", "lr": 1e-3}]
    result = compare_on_task(
        task,
        tokenizer,
        str(roberta_dir),
        {"kd": student_dir},
        config,
        config,
        thetas,
        generator,
        [0],
        3,
        progress=False,
    )
    assert result["metric"] == task.main_metric and result["test_size"] == len(task.test) == 3
    assert result["train_size"] == 3
    (record,) = result["records"]
    for arm in ARMS:
        score = record["arms"][arm]["score"]
        if task.is_regression:
            assert score is None or math.isnan(score) or -1.0 <= score <= 1.0
        else:
            assert 0.0 <= score <= 1.0


def test_source_encoder_is_roberta_without_pooler(roberta_dir):
    tokenizer = AutoTokenizer.from_pretrained(roberta_dir)
    encoder = load_encoder(str(roberta_dir))
    assert type(encoder).__name__ == "RobertaModel" and encoder.pooler is None
    task = read_glue_task(GLUE, "stsb", dev_fraction=0.4, seed=0)
    model, log = fine_tune(
        encoder, tokenizer, task, config=FineTuneConfig(epochs=1, batch_size=2, max_len=32)
    )
    assert model.num_labels == 1 and log["steps"] == math.ceil(len(task.train) / 2)
    assert all(math.isfinite(h["train_loss"]) for h in log["history"])


def test_agora_generator_writes_clean_text_with_a_byte_level_vocabulary(roberta_dir):
    """A single byte of a byte-level BPE vocabulary decodes to U+FFFD or a control character: the
    generator must never write one into a text (it did before `ose.finetuning.agora._writable`)."""
    teacher, tokenizer, _, _ = load_teacher(roberta_dir)
    generator = NearestNeighbourSubstitution(tokenizer, input_embeddings(teacher), k=5, fraction=0.5, n_new=3)
    task = read_glue_task(GLUE, "rte", dev_fraction=3 / 7, seed=0)
    mistakes = task.train.assign(text_b=task.train["text_b"] + " Café, naïve façade.")
    new = generator(mistakes, np.random.default_rng(0))
    assert len(new) > 0 and list(new.columns) == ["text_a", "text_b", "source", "side"]
    for row in new.itertuples(index=False):
        original = mistakes.loc[row.source]
        other = "text_b" if row.side == "text_a" else "text_a"
        assert getattr(row, other) == original[other] and getattr(row, row.side) != original[row.side]
        for text in (row.text_a, row.text_b):
            assert "\ufffd" not in text and text.isprintable()
    for options in generator._table.values():
        for new_id in options:
            surface = tokenizer.decode([int(new_id)]).strip()
            assert surface and surface.isprintable() and "\ufffd" not in surface
            assert new_id not in special_ids(tokenizer)
