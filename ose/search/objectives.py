"""The objectives p(ξ) (parameter size) and i(ξ) (inference cost) by exact accounting.

The network is f = C ∘ B_D ∘ … ∘ B_1 ∘ A (the paper's AB^nC form): A the embeddings, B one encoder
layer, C the output head. Counts are given per part so the AB^nC property can be checked rather
than assumed (`ose.search.abnc`). `param_count` must equal `sum(p.numel())` of `ose.arch.build_model` exactly.

The operation count is in floating-point operations for one sequence of length L: a multiply-add
counts as 2, and the cheap element-wise work (bias, residual, softmax, LayerNorm, GELU) is counted
with the per-element constants below, so the dominant terms are exact and the rest is honest
bookkeeping rather than a measurement. Measured latency lives in `ose.search.cost_model`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ose.arch import BERT_EMBEDDING, Arch, ArchError, Embedding
from ose.paper import BORT_SIZE

HEADS = ("pooler", "none", "mlm")

# Element-wise operation constants (FLOPs per element).
LAYERNORM_FLOPS = 5  # mean, subtract, variance, normalise, scale-and-shift
SOFTMAX_FLOPS = 5  # max, subtract, exp, sum, divide
GELU_FLOPS = 8  # erf-based GELU, a handful of operations
TANH_FLOPS = 1


@dataclass(frozen=True)
class PartCounts:
    """A cost split along f = C ∘ B^D ∘ A. `encoder` is D × `layer`."""

    embedding: int  # A
    layer: int  # one B
    depth: int
    head: int  # C

    @property
    def encoder(self) -> int:
        """The paper's "effective" size: the encoder layers only."""
        return self.depth * self.layer

    @property
    def total(self) -> int:
        return self.embedding + self.encoder + self.head

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "encoder": self.encoder, "total": self.total}


def _check_head(head: str) -> None:
    if head not in HEADS:
        raise ArchError(f"head must be one of {HEADS}, got {head!r}")


def layer_params(arch: Arch) -> int:
    """Parameters of one encoder layer B."""
    h, i = arch.hidden, arch.intermediate
    attention = 4 * (h * h + h)  # Q, K, V and output projections with biases
    feed_forward = (h * i + i) + (i * h + h)
    layer_norms = 2 * 2 * h
    return attention + feed_forward + layer_norms


def embedding_params(arch: Arch, embedding: Embedding = BERT_EMBEDDING) -> int:
    """Parameters of A: word, position and token-type tables and the embedding LayerNorm."""
    rows = embedding.vocab_size + embedding.max_positions + embedding.type_vocab_size
    return rows * arch.hidden + 2 * arch.hidden


def head_params(arch: Arch, embedding: Embedding = BERT_EMBEDDING, head: str = "pooler") -> int:
    """Parameters of C. The MLM decoder's weight is tied to the word embedding: only its bias counts."""
    _check_head(head)
    h = arch.hidden
    if head == "pooler":
        return h * h + h
    if head == "mlm":
        return (h * h + h) + 2 * h + embedding.vocab_size  # transform, LayerNorm, decoder bias
    return 0


def param_count(arch: Arch, embedding: Embedding = BERT_EMBEDDING, head: str = "pooler") -> PartCounts:
    """p(ξ) by part. BERT-large with pooler: 335,141,888; BERT-base: 109,482,240."""
    return PartCounts(
        embedding_params(arch, embedding), layer_params(arch), arch.depth, head_params(arch, embedding, head)
    )


def layer_matmul_flops(arch: Arch, seq_len: int) -> int:
    """Matrix-product FLOPs of one encoder layer B: the part a FLOP counter sees."""
    L, h, i = seq_len, arch.hidden, arch.intermediate
    projections = 2 * 4 * L * h * h  # Q, K, V and output
    attention = 2 * L * L * h + 2 * L * L * h  # Q·Kᵀ and weights·V, summed over heads
    feed_forward = 2 * 2 * L * h * i
    return projections + attention + feed_forward


def layer_flops(arch: Arch, seq_len: int) -> int:
    """FLOPs of one encoder layer B on one sequence of length L."""
    L, h, i, a = seq_len, arch.hidden, arch.intermediate, arch.heads
    biases = 4 * L * h + L * i + L * h
    scaling_and_softmax = (1 + SOFTMAX_FLOPS) * a * L * L
    activation = GELU_FLOPS * L * i
    residual_and_norms = 2 * L * h + 2 * LAYERNORM_FLOPS * L * h
    return layer_matmul_flops(arch, seq_len) + biases + scaling_and_softmax + activation + residual_and_norms


def embedding_flops(arch: Arch, seq_len: int) -> int:
    """FLOPs of A: the table look-ups are free; the two additions and the LayerNorm are not."""
    return 2 * seq_len * arch.hidden + LAYERNORM_FLOPS * seq_len * arch.hidden


def head_matmul_flops(
    arch: Arch, seq_len: int, embedding: Embedding = BERT_EMBEDDING, head: str = "pooler"
) -> int:
    """Matrix-product FLOPs of C."""
    _check_head(head)
    h, L = arch.hidden, seq_len
    if head == "pooler":
        return 2 * h * h
    if head == "mlm":
        return 2 * L * h * h + 2 * L * h * embedding.vocab_size
    return 0


def head_flops(arch: Arch, seq_len: int, embedding: Embedding = BERT_EMBEDDING, head: str = "pooler") -> int:
    """FLOPs of C: the pooler reads the first token only; the MLM head scores every position."""
    matmul = head_matmul_flops(arch, seq_len, embedding, head)
    h, L = arch.hidden, seq_len
    if head == "pooler":
        return matmul + h + TANH_FLOPS * h
    if head == "mlm":
        elementwise = L * h + GELU_FLOPS * L * h + LAYERNORM_FLOPS * L * h + L * embedding.vocab_size
        return matmul + elementwise
    return 0


def op_count(
    arch: Arch, seq_len: int = 128, embedding: Embedding = BERT_EMBEDDING, head: str = "pooler"
) -> PartCounts:
    """Analytic i(ξ): FLOPs of one forward pass on one sequence of length L, by part."""
    if seq_len < 1:
        raise ArchError(f"seq_len must be a positive integer, got {seq_len!r}")
    if seq_len > embedding.max_positions:
        raise ArchError(f"seq_len {seq_len} exceeds max_positions {embedding.max_positions}")
    return PartCounts(
        embedding_flops(arch, seq_len),
        layer_flops(arch, seq_len),
        arch.depth,
        head_flops(arch, seq_len, embedding, head),
    )


# The paper's size claims for Bort (`ose.paper.BORT_SIZE`): total and embedding parameters,
# and its size relative to BERT-large, in full and "effective" (without embeddings).
PAPER_BORT_CLAIMS = BORT_SIZE


def bort_size_claims(
    shapes: dict[str, tuple[Arch, Embedding]], reference: tuple[Arch, Embedding], tolerance: float = 0.05
) -> list[dict]:
    """Our counts for each Bort shape beside the paper's, with a per-claim match flag.

    "Effective" size is everything but the embedding (encoder layers and pooler), relative to the
    same part of BERT-large; the encoder-only ratio is reported too. A claim matches when our
    number is within `tolerance` (relative) of the paper's rounded figure.
    """
    ref = param_count(*reference)
    rows = []
    for name, (arch, embedding) in shapes.items():
        p = param_count(arch, embedding)
        ours = {
            "total_M": p.total / 1e6,
            "embedding_M": p.embedding / 1e6,
            "pct_of_bert_large": 100 * p.total / ref.total,
            "effective_pct_of_bert_large": 100 * (p.total - p.embedding) / (ref.total - ref.embedding),
        }
        row = {
            "shape": name,
            "arch": arch.name,
            "vocab": embedding.vocab_size,
            "total": p.total,
            "embedding": p.embedding,
            "encoder": p.encoder,
            "encoder_pct_of_bert_large_encoder": 100 * p.encoder / ref.encoder,
        }
        for claim, paper in PAPER_BORT_CLAIMS.items():
            row[claim] = round(ours[claim], 2)
            row[f"paper_{claim}"] = paper
            row[f"{claim}_matches"] = abs(ours[claim] - paper) <= tolerance * paper
        row["matches_all"] = all(row[f"{c}_matches"] for c in PAPER_BORT_CLAIMS)
        rows.append(row)
    return rows
