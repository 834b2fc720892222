"""Weight inheritance: a small ξ initialised from a slice of the source (an extension beyond the paper).

The third pretraining arm, "inherited init + KD" (as in DynaBERT, HAT, Sheared-LLaMA, Minitron and
weight subcloning), starts the student from the source's own weights instead of a random init:

- depth: D of the source's layers are copied whole (`kept_layers`: the bottom D, or every k-th);
- heads: in each kept layer, the A heads of highest importance;
- FFN: in each kept layer, the I intermediate neurons of highest importance (rows of
  `intermediate.dense`, columns of `output.dense`);
- hidden: ONE set of H residual dimensions of highest importance, applied to the word, position and
  token-type embeddings, every LayerNorm, the input columns of Q/K/V and of the FFN, the output rows
  of the attention output and of the FFN, and the MLM head (transform dense in and out, its
  LayerNorm, decoder columns; the decoder bias is kept whole, one entry per token). The decoder stays
  tied to the word embedding. A `BertForMaskedLM` has no pooler, nor does the result, so there is no
  pooler to slice: a classifier built on any arm gets a fresh one.

Importance is measured once on calibration token ids from the pretraining corpus (`measure_importance`),
source in eval mode, no gradients, every position counted (packed blocks have no padding):

- head h of a layer: mean over tokens of ‖c_h W_O[:, h]ᵀ‖₂, the L2 norm of the head's context vector
  c_h (its attention-weighted values, head-size wide) projected through its own slice of the attention
  output matrix, i.e. the head's additive contribution to the residual stream;
- FFN neuron j: mean over tokens of |GELU activation_j| × ‖W_out[:, j]‖₂, the mean size of its write
  into the residual stream;
- hidden dimension k: mean over tokens of |x_k| for the LayerNorm outputs that form the post-LN
  residual stream, summed over the embedding output and, for each kept layer, the outputs of its
  attention and FFN LayerNorms.

Orders are descending by score with ties broken by the lower index; the selected indices are then
sorted back into their ORIGINAL order, so selecting everything is the identity.

What is exact and what is approximate:

- exact: a kept layer's computation restricted to its kept heads (when ξ's head size H/A equals the
  source's) and its kept FFN neurons, given the same residual stream; copying layers whole; inheriting
  the source's own ξ with `layers="bottom"` reproduces the source's logits (up to float rounding).
- approximate: dropping residual dimensions (each LayerNorm then normalises over fewer dimensions, which
  changes its mean and variance, and every dropped dimension's contribution to a dot product is lost);
  dropping heads, neurons or layers (their contributions are lost, not compensated); and a change of
  head size. When ξ's head size d = H/A differs from the source's d_s, each of ξ's heads is filled from
  g = ⌈d/d_s⌉ consecutive kept source heads (in original order): their Q/K/V dimensions concatenated,
  of which the FIRST d are kept (for d < d_s, simply the first d dimensions of one head), with the
  matching input columns of the attention output. Q is multiplied by √(d/d_s) so that the attention
  logits keep the source's 1/√d_s scale: for d = g·d_s a merged head's logits are the sum of its source
  heads' logits; for d < d_s they are the partial dot product over the kept dimensions. Either way the
  softmax over merged or truncated logits differs from the source's, so this slice is approximate.

`inherit` returns a model with exactly the config and class of `ose.arch.build_model(ξ, embedding,
head="mlm")`, so every pretraining arm saves with `save_pretrained` and loads with
`AutoModelForMaskedLM` the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertForMaskedLM

from ose.arch import Arch, ArchError, Embedding, build_model, from_bert_config, to_bert_config

LAYER_CHOICES = ("bottom", "every_k")
CALIBRATION_BATCH_SIZE = 32  # blocks per forward pass; changes speed and memory, not the scores
# Config entries that change what a BERT layer computes: the source's must equal the ones that
# `build_model` writes, or the copied weights would run under another function.
FUNCTIONAL_CONFIG = ("hidden_act", "layer_norm_eps", "is_decoder", "add_cross_attention")


def _descending(scores: Sequence[float]) -> tuple[int, ...]:
    """Indices by descending score, ties broken by the lower index (deterministic)."""
    return tuple(sorted(range(len(scores)), key=lambda i: (-scores[i], i)))


@dataclass(frozen=True)
class Importance:
    """Calibration scores of the source, for the kept layers.

    layers: kept source layer indices, ascending. head_scores[ℓ][h]: mean L2 norm of head h's output
    projected through its slice of the attention output matrix, in kept layer ℓ (one entry per
    source head). neuron_scores[ℓ][j]: mean |activation| × L2 norm of the output column, per FFN
    neuron. hidden_scores[k]: mean |LayerNorm output| of residual dimension k, summed over the
    embedding output and both LayerNorms of every kept layer. tokens: calibration tokens averaged.
    """

    layers: tuple[int, ...]
    head_scores: tuple[tuple[float, ...], ...]
    neuron_scores: tuple[tuple[float, ...], ...]
    hidden_scores: tuple[float, ...]
    tokens: int

    @property
    def head_order(self) -> tuple[tuple[int, ...], ...]:
        """Per kept layer, source head indices from most to least important."""
        return tuple(_descending(scores) for scores in self.head_scores)

    @property
    def neuron_order(self) -> tuple[tuple[int, ...], ...]:
        """Per kept layer, FFN neuron indices from most to least important."""
        return tuple(_descending(scores) for scores in self.neuron_scores)

    @property
    def hidden_order(self) -> tuple[int, ...]:
        """Residual dimensions from most to least important."""
        return _descending(self.hidden_scores)


def check_source(source: nn.Module) -> BertForMaskedLM:
    """The source, if it is a BERT-style masked LM whose layers `build_model`'s config computes alike."""
    if not isinstance(source, BertForMaskedLM):
        raise TypeError(
            f"weight inheritance supports BertForMaskedLM sources (BERT, MiniLM, the saved teacher "
            f"loaded with AutoModelForMaskedLM); got {type(source).__name__}"
        )
    reference = to_bert_config(*from_bert_config(source.config))
    for key in FUNCTIONAL_CONFIG:
        ours, theirs = getattr(reference, key, None), getattr(source.config, key, None)
        if ours != theirs:
            raise ValueError(
                f"source config {key}={theirs!r} differs from the {key}={ours!r} that build_model "
                "gives every pretraining arm; inherited weights would compute another function"
            )
    position = getattr(source.config, "position_embedding_type", "absolute")
    if position not in (None, "absolute"):
        raise ValueError(f"source config position_embedding_type={position!r}; only 'absolute' is supported")
    return source


def kept_layers(
    source_depth: int, depth: int, layers: str = "bottom", every: int | None = None
) -> tuple[int, ...]:
    """Source layer indices (0-based, ascending) that become ξ's D layers.

    layers="bottom": 0, 1, …, D−1. layers="every_k": the last layer of each of D consecutive groups
    of k layers, i.e. k−1, 2k−1, …, D·k−1, where k = `every` or, by default, ⌊N/D⌋ for a source of
    depth N; with k = N/D this ends at the source's top layer, whose output its MLM head was trained
    on (e.g. N=6, D=3: layers 1, 3, 5). `every` is only used with "every_k".
    """
    if layers not in LAYER_CHOICES:
        raise ValueError(f"layers must be one of {LAYER_CHOICES}, got {layers!r}")
    if depth > source_depth:
        raise ArchError(f"depth D={depth} exceeds the source's depth {source_depth}: D ≤ {source_depth}")
    if layers == "bottom":
        if every is not None:
            raise ValueError(f"every={every!r} is only used with layers='every_k', not layers='bottom'")
        return tuple(range(depth))
    if every is None:
        every = source_depth // depth
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive integer (the layer stride k), got {every!r}")
    if depth * every > source_depth:
        raise ArchError(
            f"every={every} with depth D={depth} needs D·k={depth * every} source layers; the source "
            f"has {source_depth} (every ≤ {source_depth // depth})"
        )
    return tuple((i + 1) * every - 1 for i in range(depth))


def _check_calibration(calibration_ids: torch.Tensor, embedding: Embedding) -> torch.Tensor:
    if not isinstance(calibration_ids, torch.Tensor) or calibration_ids.dim() != 2:
        raise ValueError("calibration_ids must be a (B, L) tensor of token ids")
    if calibration_ids.dtype.is_floating_point or calibration_ids.dtype == torch.bool:
        raise ValueError(f"calibration_ids must hold integer token ids, got dtype {calibration_ids.dtype}")
    if calibration_ids.numel() == 0:
        raise ValueError(f"calibration_ids is empty (shape {tuple(calibration_ids.shape)})")
    if calibration_ids.shape[1] > embedding.max_positions:
        raise ValueError(
            f"calibration_ids has length {calibration_ids.shape[1]} > the source's "
            f"{embedding.max_positions} positions"
        )
    if int(calibration_ids.min()) < 0 or int(calibration_ids.max()) >= embedding.vocab_size:
        raise ValueError(f"calibration_ids must lie in [0, {embedding.vocab_size}) (the source's vocabulary)")
    return calibration_ids.long()


@torch.no_grad()
def measure_importance(source: nn.Module, calibration_ids: torch.Tensor, layers: Sequence[int]) -> Importance:
    """Head, FFN-neuron and residual-dimension scores of `source` on calibration ids (B, L).

    `layers` are the kept source layers (`kept_layers`): heads and neurons are scored there, and the
    hidden score sums their LayerNorm outputs with the embedding output. Scores are means over all
    B·L tokens; see the module docstring for each measure.
    """
    source = check_source(source)
    arch, embedding = from_bert_config(source.config)
    ids = _check_calibration(calibration_ids, embedding)
    layers = tuple(layers)
    if not layers or list(layers) != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= arch.depth:
        raise ValueError(f"layers must be ascending distinct indices in [0, {arch.depth}), got {layers}")
    blocks = source.bert.encoder.layer
    device = next(source.parameters()).device
    head_size = arch.head_size

    head_sums = torch.zeros(len(layers), arch.heads, dtype=torch.float64)
    neuron_sums = torch.zeros(len(layers), arch.intermediate, dtype=torch.float64)
    hidden_sums = torch.zeros(arch.hidden, dtype=torch.float64)

    def on_context(slot: int, output_dense: nn.Linear):
        def hook(module, inputs, output):
            context = output[0] if isinstance(output, tuple) else output  # (B, L, A·d)
            context = context.reshape(*context.shape[:-1], arch.heads, head_size)  # (B, L, A, d)
            weight = output_dense.weight.reshape(arch.hidden, arch.heads, head_size)  # (H, A, d)
            for h in range(arch.heads):
                written = context[..., h, :] @ weight[:, h, :].T  # (B, L, H)
                head_sums[slot, h] += written.norm(dim=-1).sum().double().cpu()

        return hook

    def on_activation(slot: int, output_dense: nn.Linear):
        column_norm = output_dense.weight.norm(dim=0)  # (I,)

        def hook(module, inputs, output):
            size = output.abs().sum(dim=(0, 1)) * column_norm  # (I,)
            neuron_sums[slot] += size.double().cpu()

        return hook

    def on_residual(module, inputs, output):
        hidden_sums.add_(output.abs().sum(dim=(0, 1)).double().cpu())  # (H,)

    handles = [source.bert.embeddings.LayerNorm.register_forward_hook(on_residual)]
    for slot, index in enumerate(layers):
        block = blocks[index]
        handles += [
            block.attention.self.register_forward_hook(on_context(slot, block.attention.output.dense)),
            block.intermediate.register_forward_hook(on_activation(slot, block.output.dense)),
            block.attention.output.LayerNorm.register_forward_hook(on_residual),
            block.output.LayerNorm.register_forward_hook(on_residual),
        ]
    was_training = source.training
    source.eval()
    try:
        for start in range(0, len(ids), CALIBRATION_BATCH_SIZE):
            source.bert(input_ids=ids[start : start + CALIBRATION_BATCH_SIZE].to(device))
    finally:
        for handle in handles:
            handle.remove()
        source.train(was_training)
    tokens = ids.numel()
    return Importance(
        layers=layers,
        head_scores=tuple(tuple((row / tokens).tolist()) for row in head_sums),
        neuron_scores=tuple(tuple((row / tokens).tolist()) for row in neuron_sums),
        hidden_scores=tuple((hidden_sums / tokens).tolist()),
        tokens=tokens,
    )


def _top(order: Sequence[int], count: int) -> torch.Tensor:
    """The `count` most important indices, back in their original (ascending) order."""
    return torch.tensor(sorted(order[:count]), dtype=torch.long)


def head_dimensions(
    head_order: Sequence[int], source_head_size: int, heads: int, head_size: int
) -> torch.Tensor:
    """Source Q/K/V output dimensions (A·d,) that fill ξ's `heads` heads of size `head_size`.

    Each of ξ's heads takes g = ⌈d/d_s⌉ consecutive heads of the A·g most important source heads
    (in original order), concatenates their dimensions and keeps the first d. With d = d_s this is
    the kept heads' dimensions, unchanged.
    """
    group = math.ceil(head_size / source_head_size)
    if heads * group > len(head_order):
        raise ArchError(
            f"A={heads} heads of size {head_size} need {heads * group} source heads of size "
            f"{source_head_size} ({group} per head); the source has {len(head_order)}"
        )
    kept = _top(head_order, heads * group).tolist()
    dims = []
    for target in range(heads):
        sources = kept[target * group : (target + 1) * group]
        pooled = torch.cat([torch.arange(h * source_head_size, (h + 1) * source_head_size) for h in sources])
        dims.append(pooled[:head_size])
    return torch.cat(dims)  # (A·d,)


def _check_fits(arch: Arch, source_arch: Arch) -> None:
    """ξ must be a slice of the source: D, H, I no larger, and enough source heads to fill A."""
    for field in ("depth", "hidden", "intermediate"):
        if getattr(arch, field) > getattr(source_arch, field):
            raise ArchError(
                f"{field} of ξ={arch.name} is {getattr(arch, field)}, larger than the source's "
                f"{getattr(source_arch, field)} ({source_arch.name}); inheritance only slices"
            )
    group = math.ceil(arch.head_size / source_arch.head_size)
    if arch.heads * group > source_arch.heads:
        raise ArchError(
            f"heads of ξ={arch.name}: A={arch.heads} heads of size {arch.head_size} need "
            f"{arch.heads * group} source heads of size {source_arch.head_size} ({group} per head); "
            f"the source {source_arch.name} has {source_arch.heads}"
        )


def fits(arch: Arch, source_arch: Arch) -> bool:
    """Whether ξ can be sliced from the source (`_check_fits` without the message)."""
    try:
        _check_fits(arch, source_arch)
    except ArchError:
        return False
    return True


def _copy(target: torch.Tensor, value: torch.Tensor) -> None:
    if target.shape != value.shape:
        raise AssertionError(f"sliced shape {tuple(value.shape)} != target shape {tuple(target.shape)}")
    target.copy_(value)


def _copy_layer_norm(target: nn.LayerNorm, source: nn.LayerNorm, hidden: torch.Tensor) -> None:
    _copy(target.weight, source.weight[hidden])
    _copy(target.bias, source.bias[hidden])


def _copy_embeddings(target, source, hidden: torch.Tensor) -> None:
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        table = getattr(target, name)
        if isinstance(table, nn.Embedding):  # a model without token types has a parameter-free stand-in
            _copy(table.weight, getattr(source, name).weight[:, hidden])
    _copy_layer_norm(target.LayerNorm, source.LayerNorm, hidden)


def _copy_attention(target, source, hidden: torch.Tensor, dims: torch.Tensor, query_scale: float) -> None:
    for name in ("query", "key", "value"):
        scale = query_scale if name == "query" else 1.0
        mine, theirs = getattr(target.self, name), getattr(source.self, name)
        _copy(mine.weight, theirs.weight[dims][:, hidden] * scale)
        _copy(mine.bias, theirs.bias[dims] * scale)
    _copy(target.output.dense.weight, source.output.dense.weight[hidden][:, dims])
    _copy(target.output.dense.bias, source.output.dense.bias[hidden])
    _copy_layer_norm(target.output.LayerNorm, source.output.LayerNorm, hidden)


def _copy_feed_forward(target, source, hidden: torch.Tensor, neurons: torch.Tensor) -> None:
    _copy(target.intermediate.dense.weight, source.intermediate.dense.weight[neurons][:, hidden])
    _copy(target.intermediate.dense.bias, source.intermediate.dense.bias[neurons])
    _copy(target.output.dense.weight, source.output.dense.weight[hidden][:, neurons])
    _copy(target.output.dense.bias, source.output.dense.bias[hidden])
    _copy_layer_norm(target.output.LayerNorm, source.output.LayerNorm, hidden)


def _copy_mlm_head(target, source, hidden: torch.Tensor) -> None:
    transform, theirs = target.predictions.transform, source.predictions.transform
    _copy(transform.dense.weight, theirs.dense.weight[hidden][:, hidden])
    _copy(transform.dense.bias, theirs.dense.bias[hidden])
    _copy_layer_norm(transform.LayerNorm, theirs.LayerNorm, hidden)
    _copy(target.predictions.decoder.weight, source.predictions.decoder.weight[:, hidden])
    _copy(target.predictions.decoder.bias, source.predictions.decoder.bias)
    _copy(target.predictions.bias, source.predictions.bias)


def _check_tied(model: BertForMaskedLM, what: str) -> None:
    decoder = model.cls.predictions.decoder.weight
    word = model.bert.embeddings.word_embeddings.weight
    if decoder.data_ptr() != word.data_ptr() and not torch.equal(decoder, word):
        raise ValueError(
            f"{what}: the MLM decoder is not tied to the word embedding, but every pretraining arm "
            "ties them (build_model); inheritance cannot keep both"
        )


@torch.no_grad()
def slice_source(source: nn.Module, arch: Arch, importance: Importance) -> BertForMaskedLM:
    """ξ's `BertForMaskedLM` (as `build_model(ξ, embedding, head="mlm")` makes it) with weights sliced
    from `source` by `importance` (its layers become ξ's layers, in order). In eval mode."""
    source = check_source(source)
    source_arch, embedding = from_bert_config(source.config)
    _check_fits(arch, source_arch)
    if len(importance.layers) != arch.depth:
        raise ValueError(
            f"importance covers {len(importance.layers)} layers but ξ={arch.name} has D={arch.depth}"
        )
    _check_tied(source, "source")
    with torch.random.fork_rng(devices=[]):  # the fresh init is overwritten: leave the caller's RNG alone
        model = build_model(arch, embedding, head="mlm")
    model.to(next(source.parameters()).device)
    hidden = _top(importance.hidden_order, arch.hidden).to(model.device)
    query_scale = math.sqrt(arch.head_size / source_arch.head_size)
    _copy_embeddings(model.bert.embeddings, source.bert.embeddings, hidden)
    for slot, index in enumerate(importance.layers):
        mine, theirs = model.bert.encoder.layer[slot], source.bert.encoder.layer[index]
        dims = head_dimensions(importance.head_order[slot], source_arch.head_size, arch.heads, arch.head_size)
        _copy_attention(mine.attention, theirs.attention, hidden, dims.to(model.device), query_scale)
        neurons = _top(importance.neuron_order[slot], arch.intermediate).to(model.device)
        _copy_feed_forward(mine, theirs, hidden, neurons)
    _copy_mlm_head(model.cls, source.cls, hidden)
    _check_tied(model, "inherited model")
    return model.eval()


def calibration_rows(n_blocks: int, n: int, seed: int) -> torch.Tensor:
    """Which training blocks measure importance for inheritance: `n` of them, seeded (sorted)."""
    order = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed))
    return order[: min(n, n_blocks)].sort().values


def inherit(
    source: nn.Module,
    arch: Arch,
    calibration_ids: torch.Tensor,
    layers: str = "bottom",
    every: int | None = None,
) -> BertForMaskedLM:
    """ξ initialised from the source: `kept_layers`, then `measure_importance` on calibration ids
    (B, L) from the pretraining corpus, then `slice_source`. A notebook that prints the orders calls
    the three itself; this is their composition (a one-use `Slicer`)."""
    return Slicer(source, calibration_ids, layers, every)(arch)


class Slicer:
    """ξ → ξ sliced from `source` (`inherit`), with importance measured once per set of kept layers.

    For many ξ of one space (stage extract's `inherited` init of ê): ξ of the same depth share kept
    layers, so their importance is measured once. Each call returns a new model, as `inherit` would.
    """

    def __init__(
        self,
        source: nn.Module,
        calibration_ids: torch.Tensor,
        layers: str = "bottom",
        every: int | None = None,
    ) -> None:
        self.source = check_source(source)
        self.source_arch, _ = from_bert_config(self.source.config)
        self.calibration_ids, self.layers, self.every = calibration_ids, layers, every
        self._importance: dict[tuple[int, ...], Importance] = {}

    def __call__(self, arch: Arch) -> BertForMaskedLM:
        _check_fits(arch, self.source_arch)
        chosen = kept_layers(self.source_arch.depth, arch.depth, self.layers, self.every)
        if chosen not in self._importance:
            self._importance[chosen] = measure_importance(self.source, self.calibration_ids, chosen)
        return slice_source(self.source, arch, self._importance[chosen])
