"""The AB^nC property, checked rather than assumed.

The FPTAS's guarantee needs f = C ∘ B_n ∘ … ∘ B_1 ∘ A with A (embeddings) and C (output head) no
more costly than any B (encoder layer), in parameters p and in inference cost i. We check each
condition two ways: exactly over every ξ of a space (parameter count and operation count), and by
measured latency of each part on the space's smallest, median and largest ξ. C is checked both as a
pooler (classification) and as the masked-LM head that pretraining uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ose.arch import BERT_EMBEDDING, Arch, Embedding
from ose.search.cost_model import LatencySettings, measure_parts, measure_parts_cached
from ose.search.objectives import op_count, param_count

CONDITIONS = ("p_A_le_B", "i_A_le_B", "p_C_le_B", "i_C_le_B", "p_Cmlm_le_B", "i_Cmlm_le_B")


def analytic_conditions(arch: Arch, seq_len: int, embedding: Embedding = BERT_EMBEDDING) -> dict[str, bool]:
    p, i = param_count(arch, embedding, "pooler"), op_count(arch, seq_len, embedding, "pooler")
    p_mlm = param_count(arch, embedding, "mlm")
    i_mlm = op_count(arch, seq_len, embedding, "mlm")
    return {
        "p_A_le_B": p.embedding <= p.layer,
        "i_A_le_B": i.embedding <= i.layer,
        "p_C_le_B": p.head <= p.layer,
        "i_C_le_B": i.head <= i.layer,
        "p_Cmlm_le_B": p_mlm.head <= p_mlm.layer,
        "i_Cmlm_le_B": i_mlm.head <= i_mlm.layer,
    }


def fraction_holding(
    space: Sequence[Arch], seq_len: int, embedding: Embedding = BERT_EMBEDDING
) -> dict[str, float]:
    """Share of the space's architectures for which each condition holds (exact counts)."""
    rows = [analytic_conditions(a, seq_len, embedding) for a in space]
    return {c: sum(r[c] for r in rows) / len(rows) for c in CONDITIONS}


def representatives(space: Sequence[Arch], embedding: Embedding = BERT_EMBEDDING) -> list[Arch]:
    """The smallest, median and largest ξ of a space by parameter count."""
    ordered = sorted(space, key=lambda a: (param_count(a, embedding).total, a))
    picks = [ordered[0], ordered[len(ordered) // 2], ordered[-1]]
    return list(dict.fromkeys(picks))


def part_table(
    space_name: str,
    archs: Sequence[Arch],
    settings: LatencySettings,
    embedding: Embedding = BERT_EMBEDDING,
    seed: int = 0,
    cache_path: Path | None = None,
) -> list[dict]:
    """One row per (ξ, part): parameters, FLOPs and measured latency of A, B, C and C_mlm.

    With `cache_path` (the latency cache of stage costs) timings are reused, never re-measured.
    """
    rows = []
    for arch in archs:
        p = param_count(arch, embedding, "pooler")
        i = op_count(arch, settings.seq_len, embedding, "pooler")
        p_mlm = param_count(arch, embedding, "mlm")
        i_mlm = op_count(arch, settings.seq_len, embedding, "mlm")
        timings = (
            measure_parts_cached(space_name, arch, settings, cache_path, embedding, seed)
            if cache_path is not None
            else measure_parts(arch, settings, embedding, seed)
        )
        for key, part, params, flops, timing in (
            ("A", "A (embeddings)", p.embedding, i.embedding, timings["A"]),
            ("B", "B (one layer)", p.layer, i.layer, timings["B"]),
            ("C", "C (pooler)", p.head, i.head, timings["C_pooler"]),
            ("Cmlm", "C (masked-LM head)", p_mlm.head, i_mlm.head, timings["C_mlm"]),
        ):
            rows.append(
                {
                    "space": space_name,
                    "arch": arch.name,
                    "key": key,
                    "part": part,
                    "params": params,
                    "gflops": flops * settings.batch_size / 1e9,
                    "median_ms": timing.median_ms,
                }
            )
    return rows


def measured_conditions(rows: Sequence[dict]) -> dict[str, bool]:
    """Whether each condition holds on every measured ξ of `part_table` rows (latency for i)."""
    by_arch: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_arch.setdefault(row["arch"], {})[row["key"]] = row
    verdict = dict.fromkeys(CONDITIONS, True)
    for parts in by_arch.values():
        b = parts["B"]
        for key in ("A", "C", "Cmlm"):
            verdict[f"p_{key}_le_B"] &= parts[key]["params"] <= b["params"]
            verdict[f"i_{key}_le_B"] &= parts[key]["median_ms"] <= b["median_ms"]
    return verdict


def verdict(fraction: dict[str, float], measured: dict[str, bool]) -> dict[str, bool]:
    """A condition holds for a space when it holds exactly for every ξ and on every measured ξ."""
    return {c: fraction[c] == 1.0 and measured[c] for c in CONDITIONS}
