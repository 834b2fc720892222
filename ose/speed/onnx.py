"""ONNX Runtime beside PyTorch: export, int8 quantisation, sessions, and an equivalence check.

ONNX. `export_onnx` traces a BERT-like model (inputs `input_ids`, `attention_mask`; batch and sequence
axes dynamic) with the TorchScript exporter (`dynamo=False`), and writes ξ, the embedding sizes, the
head and the parameter count into the file's metadata, so an `onnxruntime.InferenceSession` can be
benchmarked beside the PyTorch models. `quantize_int8` makes a dynamically quantised copy (int8
weights, activations quantised at run time).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ose.arch import Embedding
from ose.pipeline.atomic import atomic_path
from ose.search.cost_model import random_inputs
from ose.speed.harness import META_PREFIX, check_positive, describe_torch

# --- ONNX Runtime -----------------------------------------------------------------------------


class _Outputs(nn.Module):
    """The model as a function of (input_ids, attention_mask) returning plain tensors.

    Encoders give last_hidden_state (and pooler_output when they have a pooler); heads give logits.
    """

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return tuple(out[n] for n in self.names)


def _output_names(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[str, ...]:
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask)
    if getattr(out, "last_hidden_state", None) is not None:
        return ("last_hidden_state",) + (("pooler_output",) if out.get("pooler_output") is not None else ())
    if getattr(out, "logits", None) is not None:
        return ("logits",)
    raise ValueError("model returns neither last_hidden_state nor logits: not a BERT-like model")


def _padded_inputs(
    embedding: Embedding, batch: int, seq: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ids and a mask in which every sequence but the first is padded to a random length."""
    ids = random_inputs(embedding, batch, seq, seed)  # (B, L)
    generator = torch.Generator().manual_seed(seed + 1)
    lengths = torch.randint(max(1, seq // 2), seq + 1, (batch,), generator=generator)
    lengths[0] = seq
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()  # (B, L)
    return ids, mask


def export_onnx(
    model: nn.Module, path: str | Path, seq_len: int = 16, batch: int = 2, opset: int = 17
) -> Path:
    """Export a BERT-like model to ONNX with dynamic batch and sequence axes, atomically.

    Traced at (batch, seq_len) with a partly padded mask, so the masking path is what gets traced;
    any batch and sequence length (up to the model's max positions) run afterwards. The file's
    metadata records ξ, embedding sizes, head and parameter count for `benchmark_models`.
    """
    import onnx

    check_positive("batch", [batch])
    check_positive("seq_len", [seq_len])
    if opset < 14:
        raise ValueError(f"opset must be at least 14, got {opset}")
    info = describe_torch("model", model)
    if seq_len > info["embedding"].max_positions:
        raise ValueError(
            f"seq_len {seq_len} exceeds the model's max positions {info['embedding'].max_positions}"
        )
    was_training = model.training
    ids, mask = _padded_inputs(info["embedding"], batch, seq_len, seed=0)
    try:
        model.eval()
        names = _output_names(model, ids, mask)
        wrapper = _Outputs(model, names).eval()
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
        axes |= {n: {0: "batch", 1: "sequence"} if n != "pooler_output" else {0: "batch"} for n in names}
        with atomic_path(path) as tmp, warnings.catch_warnings():
            # The tracer warns about Python-level branches in transformers' mask code; they do not
            # depend on the batch or sequence length (checked by the round-trip test).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message="The feature will be removed.*")
            warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
            torch.onnx.export(
                wrapper,
                (ids, mask),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=["input_ids", "attention_mask"],
                output_names=list(names),
                dynamic_axes=axes,
                do_constant_folding=True,
            )
            proto = onnx.load(str(tmp))
            metadata = {
                "arch": info["arch"].name,
                "vocab_size": info["embedding"].vocab_size,
                "max_positions": info["embedding"].max_positions,
                "type_vocab_size": info["embedding"].type_vocab_size,
                "head": info["head"],
                "params": info["params"],
                "source_class": type(model).__name__,
            }
            onnx.helper.set_model_props(proto, {META_PREFIX + k: str(v) for k, v in metadata.items()})
            onnx.save(proto, str(tmp))
    finally:
        model.train(was_training)
    return Path(path)


def quantize_int8(onnx_path: str | Path, out_path: str | Path, per_channel: bool = False) -> Path:
    """Dynamic int8 quantisation (onnxruntime `quantize_dynamic`, QInt8 weights), written atomically.

    Weights of MatMul (and embedding Gather) nodes become int8; activations are quantised at run
    time. The ose metadata is kept and `ose.weights` is set to "int8".
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    onnx.helper.set_model_props(proto, {**props, META_PREFIX + "weights": "int8"})
    with atomic_path(out_path) as tmp:
        quantize_dynamic(proto, str(tmp), weight_type=QuantType.QInt8, per_channel=per_channel)
    return Path(out_path)


def ort_session(path: str | Path, threads: int):
    """An onnxruntime CPU session with `threads` intra-op threads, sequential execution (one
    inter-op thread) and every graph optimisation on."""
    import onnxruntime as ort

    check_positive("threads", [threads])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity along the last axis."""
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(norms, 1e-12)


def check_equivalence(model: nn.Module, session, batch: int = 2, seq: int = 16, seed: int = 0) -> dict:
    """How closely the ONNX session reproduces the PyTorch model on seeded, partly padded inputs.

    Compared over the real (unpadded) tokens of the first output (last_hidden_state, or logits):
    max and mean absolute difference and the smallest per-token cosine similarity; also the
    smallest cosine of the first token's vector and, if exported, of the pooler output. A float32
    export should agree to ~1e-5; an int8 one is judged by the cosines.
    """
    check_positive("batch", [batch])
    check_positive("seq", [seq])
    info = describe_torch("model", model)
    if seq > info["embedding"].max_positions:
        raise ValueError(f"seq {seq} exceeds the model's max positions {info['embedding'].max_positions}")
    ids, mask = _padded_inputs(info["embedding"], batch, seq, seed)
    names = [o.name for o in session.get_outputs()]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask)
        expected = [out[n].numpy() for n in names]
    finally:
        model.train(was_training)
    got = session.run(names, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    real = mask.numpy().astype(bool)  # (B, L)
    first, first_ref = got[0][real], expected[0][real]  # (tokens, H)
    diff = np.abs(first - first_ref)
    result = {
        "output": names[0],
        "batch": batch,
        "seq": seq,
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "cosine_min_token": float(_cosine(first, first_ref).min()),
        "cosine_first_token": float(_cosine(got[0][:, 0], expected[0][:, 0]).min()),
    }
    if "pooler_output" in names:
        k = names.index("pooler_output")
        result["cosine_pooled"] = float(_cosine(got[k], expected[k]).min())
        result["max_abs_diff_pooled"] = float(np.abs(got[k] - expected[k]).max())
    return result
