"""Stage `extract`: the pieces that wire the FPTAS (`ose.search.fptas`) to real models and data.

p(ξ) is the exact parameter count with the source's embedding (vocabulary, positions, token types)
and a pooler; i(ξ) is the latency predicted by the cost model fitted in stage `costs`; ê(ξ) comes
from `ose.search.surrogate`. The extracted architecture is written as `<arch>.json` (HAT-style naming)
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
from ose.configs import Extract  # noqa: F401 (re-exported)
from ose.pipeline.atomic import save_torch_atomic, write_text_atomic
from ose.pipeline.fingerprint import mapping_digest, state_digest, tensor_digest
from ose.search.cost_model import CostModel
from ose.search.fptas import Choice, Point, maximum_point, space_points
from ose.search.objectives import op_count, param_count
from ose.training.distill import FixedSample, fixed_sample

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


def size_of(arch: Arch, embedding: Embedding, size: str = "effective") -> int:
    """p(ξ) as W counts it: "effective", everything but the embedding table (encoder and pooler), or
    "net", every parameter.

    Effective is the default because, by the AB^nC form, the embedding is a table lookup at
    inference: it costs memory, not time, and with a 30,522-token vocabulary it dominates the net
    size of a small ξ, so that W would reward the smallest hidden size whatever ê says (as our
    first run found). The Bort paper reports both sizes (56M net, 5.5% effective).
    """
    counts = param_count(arch, embedding)
    if size == "effective":
        return counts.total - counts.embedding
    if size == "net":
        return counts.total
    raise ValueError(f"size must be 'effective' or 'net', got {size!r}")


def points_of(
    space: Sequence[Arch], embedding: Embedding, cost_model: CostModel, size: str = "effective"
) -> list[Point]:
    """(ξ, p(ξ), i(ξ)) for every ξ of the space."""
    return space_points(space, lambda a: size_of(a, embedding, size), cost_model.predict)


def reference_point(points: Sequence[Point], source: Point, reference: str) -> tuple[int, float]:
    """T of W: the source network ("source", the paper's choice: BERT-large lies outside its space),
    or the space's own maximum ("space_max", our first run's T), component-wise."""
    if reference == "source":
        larger = [pt.name for pt in points if pt.p > source.p or pt.i > source.i]
        if larger:
            raise ValueError(
                f"extract.reference 'source': the source ({source.name}) must be larger than every ξ "
                f"of the space in p and i, but {larger[:3]} are not smaller; use 'space_max'"
            )
        return maximum_point(points, source=source)
    if reference == "space_max":
        return maximum_point(points)
    raise ValueError(f"reference must be 'source' or 'space_max', got {reference!r}")


def space_geometry(
    space: Sequence[Arch], reference: Arch, embedding: Embedding, seq_len: int
) -> dict[str, float]:
    """Where a space sits around its reference network: the ranges of each ξ's effective size, net
    size and operation count as fractions of the reference's, and of W's two size factors."""
    ref = param_count(reference, embedding)
    ref_flops = op_count(reference, seq_len, embedding).total
    effective = [size_of(a, embedding) / (ref.total - ref.embedding) for a in space]
    net = [param_count(a, embedding).total / ref.total for a in space]
    flops = [op_count(a, seq_len, embedding).total / ref_flops for a in space]
    out = {"n": len(space)}
    for name, values in (("effective_size", effective), ("net_size", net), ("flops", flops)):
        out[f"{name}_min"], out[f"{name}_max"] = min(values), max(values)
    out["size_factor_min"], out["size_factor_max"] = 1 - max(effective), 1 - min(effective)
    out["cost_factor_min"], out["cost_factor_max"] = 1 - max(flops), 1 - min(flops)
    return out


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
    return sample_key(train, heldout, teacher)


def sample_key(train: FixedSample, heldout: FixedSample, teacher: torch.nn.Module) -> str:
    """A key of a sample's content: its masked tokens and the teacher's weights."""
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
        "effective_params_vs_source": (p.total - p.embedding) / (p_source.total - p_source.embedding),
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
