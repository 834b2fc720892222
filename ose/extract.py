"""Stage `extract`: the pieces that wire the FPTAS (`ose.fptas`) to real models and data.

p(ξ) is the exact parameter count with the source's embedding (vocabulary, positions, token types)
and a pooler; i(ξ) is the latency predicted by the cost model fitted in stage `costs`; ê(ξ) comes
from `ose.surrogate`. The extracted architecture is written as `<arch>.json` (HAT-style naming)
and as `extracted.json`, the stable name later stages read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from ose.arch import Arch, Embedding, from_bert_config
from ose.atomic import save_torch_atomic, write_text_atomic
from ose.configs import Extract  # noqa: F401 (re-exported)
from ose.cost_model import CostModel
from ose.costs import op_count, param_count
from ose.distill import fixed_sample
from ose.fingerprint import mapping_digest, state_digest, tensor_digest
from ose.fptas import Choice, Point, space_points

EXTRACTED = "extracted.json"

# The exponents (p, i, ê) of W that stage `extract` also reads its table under, without training:
# how much the choice depends on W's form (the paper's W is 1, 1, 1).
EXPONENT_ABLATION: tuple[tuple[float, float, float], ...] = (
    (1.0, 1.0, 1.0),
    (1.0, 1.0, 2.0),
    (1.0, 1.0, 4.0),
    (1.0, 1.0, 8.0),
    (0.5, 0.5, 1.0),
)


def load_teacher(teacher_dir: str | Path) -> tuple[torch.nn.Module, object, Arch, Embedding]:
    """The adapted teacher of stage `teacher`, its tokenizer, ξ and embedding."""
    teacher = AutoModelForMaskedLM.from_pretrained(teacher_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    arch, embedding = from_bert_config(teacher.config)
    return teacher, tokenizer, arch, embedding


def points_of(space: Sequence[Arch], embedding: Embedding, cost_model: CostModel) -> list[Point]:
    """(ξ, p(ξ), i(ξ)) for every ξ of the space."""
    return space_points(space, lambda a: param_count(a, embedding).total, cost_model.predict)


def write_sample(
    teacher: torch.nn.Module,
    tokenizer,
    blocks: dict[str, torch.Tensor],
    steps: int,
    batch_size: int,
    seq_len: int,
    heldout_batches: int,
    seed: int,
    path: str | Path,
) -> str:
    """B (one batch per training step) and the held-out batches, with teacher logits, saved once.

    Returns a key of the sample's content: its masked tokens and the teacher's weights. (The file's
    bytes are no key: the teacher's logits may differ in the last bits from run to run.)
    """
    train = fixed_sample(blocks["train"], steps, batch_size, seq_len, teacher, tokenizer, seed)
    heldout = fixed_sample(blocks["heldout"], heldout_batches, batch_size, seq_len, teacher, tokenizer, seed)
    save_torch_atomic({"train": train.to_dict(), "heldout": heldout.to_dict()}, path)
    parts = [tensor_digest(t) for t in (train.inputs, train.labels, heldout.inputs, heldout.labels)]
    return mapping_digest({"sample": parts, "teacher": state_digest(teacher)})


def describe(choice: Choice, embedding: Embedding, cost_model: CostModel, source: Arch) -> dict:
    """Everything known about the extracted ξ: its objectives, W, θ and predicted costs."""
    arch = Arch.parse(choice.arch) if isinstance(choice.arch, str) else choice.arch
    p = param_count(arch, embedding)
    p_source = param_count(source, embedding)
    return {
        **{k: v for k, v in choice.as_dict().items() if k != "arch"},
        "arch": arch.name,
        **arch.as_dict(),
        "embedding": asdict(embedding),
        "params": p.as_dict(),
        "gflops_per_sequence": op_count(arch, cost_model.seq_len, embedding).total / 1e9,
        "predicted_latency_ms": cost_model.predict(arch),
        "cost_model": {
            "seq_len": cost_model.seq_len,
            "batch_size": cost_model.batch_size,
            "threads": cost_model.threads,
        },
        "source": source.name,
        "params_vs_source": p.total / p_source.total,
        "latency_vs_source": cost_model.predict(arch) / cost_model.predict(source),
    }


def write_extracted(description: dict, directory: str | Path) -> Path:
    """`<arch>.json` and `extracted.json` (same content) in `directory`."""
    directory = Path(directory)
    text = json.dumps(description, indent=2) + "\n"
    write_text_atomic(directory / f"{description['arch']}.json", text)
    write_text_atomic(directory / EXTRACTED, text)
    return directory / EXTRACTED


def read_extracted(directory: str | Path) -> tuple[Arch, dict]:
    data = json.loads((Path(directory) / EXTRACTED).read_text())
    return Arch.parse(data["arch"]), data
