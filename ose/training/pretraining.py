"""Stage `pretrain`: knowledge-distillation pretraining of the extracted architecture.

The student (the extracted ξ with the teacher's vocabulary, freshly initialised or, for the
`inherited` init, sliced from the teacher by `ose.training.inherit`) learns masked-LM on the corpus against
the frozen teacher: at each step a batch of blocks is masked (`mask_prob`, 80/10/10), both models
see the same masked input, and the loss α·CE + β·T²·(distillation term, textbook or as released) is
taken at the masked positions only (`ose.training.distill.kd_terms`); teacher and student vocabulary
projections are applied there only.
α = 1, β = 0 gives the MLM-only baseline with the same code path. Before training, `run` records the
ratio of the distillation term's gradient norm to the CE term's at the first step (`first_step_ratio`)
as the history's first entry: how much distillation the loss actually does.

One code path for one process and for several: `run(job)` in this process, or
`torchrun --standalone --nproc_per_node=N -m ose.training.pretraining JOB.json` (gloo on CPU, NCCL on GPUs),
where each rank takes its slice of the same global batch and DDP averages the gradients. Checkpoints
(rank 0) make an interrupted run resume to the same result.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForMaskedLM, AutoTokenizer

from ose.arch import Arch, Embedding, build_model
from ose.configs import MaskedLMTraining, Pretrain  # noqa: F401 (re-exported)
from ose.data.prepare import load_blocks
from ose.pipeline.atomic import write_text_atomic
from ose.pipeline.distributed import process_group, torchrun, worker_device
from ose.pipeline.fingerprint import mapping_digest, state_digest, tensor_digest, tokenizer_digest
from ose.pipeline.loading import quietly
from ose.training.distill import KDWeights, grad_norm_ratio, kd_terms
from ose.training.inherit import calibration_rows, inherit
from ose.training.loop import step_generator, step_seed, train
from ose.training.mlm import EVAL_BATCH_SIZE, IGNORE, MaskedLogits, autocast, mask_tokens, mlm_parts
from ose.training.source_model import heldout_evaluator, save_pretrained

HISTORY = "history.json"


@dataclass(frozen=True)
class PretrainJob:
    """A pretraining run in plain values (written to JSON for torchrun workers)."""

    arch: str
    embedding: dict
    teacher_dir: str
    corpus_dir: str
    out_dir: str  # the student, saved with `save_pretrained`, and history.json
    checkpoint_dir: str
    config: dict  # MaskedLMTraining fields (`Pretrain.recipe()`); batch_size is global, split over the ranks
    seed: int
    weights: dict  # KDWeights fields; alpha=1, beta=0 is the MLM-only baseline
    threads: int = 0  # 0: leave torch's default
    init: str = "random"  # or "inherited": ξ sliced from the teacher (`ose.training.inherit`)
    inherit: dict | None = None  # Inheritance fields, for init "inherited"
    heldout_seed: int | None = None  # the held-out masking's seed (None: `seed`); one for every arm and seed

    @property
    def uses_teacher(self) -> bool:
        return self.weights["beta"] > 0 or self.init == "inherited"


class TeacherStates:
    """The teacher's encoder outputs at the masked positions of each step, kept for the next KD arm.

    Arms of one stage see the same batches and maskings (same seed, same generator per step), so the
    teacher's encoder, most of a KD step's time, need run once per step for all of them. The states
    are kept in this process's memory as the teacher computed them (same dtype and values), so an arm
    that reads them gets bit-identical losses to one that computes them. `key` names the teacher and
    the batches (teacher digest, blocks, seed, batch size, masking, bf16, rank, world); a new key
    forgets the old states. An interrupted run simply recomputes them.
    """

    def __init__(self) -> None:
        self.key: str | None = None
        self.states: dict[int, torch.Tensor] = {}
        self.hits = 0

    def get(self, key: str, step: int, compute) -> torch.Tensor:
        if key != self.key:
            self.key, self.states, self.hits = key, {}, 0
        if step in self.states:
            self.hits += 1
            return self.states[step]
        self.states[step] = compute()
        return self.states[step]


TEACHER_STATES = TeacherStates()  # shared by the KD arms run in this process


def kd_step_loss(
    blocks,
    batch_size,
    tokenizer,
    vocab_size,
    teacher,
    weights: KDWeights,
    rank: int = 0,
    world: int = 1,
    mask_prob: float = 0.15,
    bf16: bool = False,
    teacher_key: str | None = None,
    terms: bool = False,
):
    """loss_fn for `ose.training.loop.train`: this rank's slice of a seeded global batch, masked once.

    The global batch and its masking (`mask_prob`) are drawn from the step's generator, the same on
    every rank; the forward passes run under bf16 autocast when `bf16` (`ose.training.mlm.autocast`).
    With `weights.beta == 0` the teacher is not run (MLM only). With `teacher_key` (which must
    identify the teacher and every input of the batches), the teacher's encoder states are shared
    with other arms through `TEACHER_STATES`. With `terms`, loss_fn returns the loss's two weighted
    terms (α·CE, β·T²·term) instead of their sum (`ose.training.distill.kd_terms`).
    """
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {world}")
    specials = sorted(set(tokenizer.all_special_ids))
    if teacher is not None:
        encoder, head = mlm_parts(teacher)
        device = next(teacher.parameters()).device

    def loss_fn(model: nn.Module, step: int, generator: torch.Generator) -> torch.Tensor:
        rows = torch.randint(len(blocks), (batch_size,), generator=generator)
        inputs, labels = mask_tokens(
            blocks[rows], tokenizer.mask_token_id, vocab_size, specials, generator, mask_prob
        )
        inputs, labels = inputs[rank::world], labels[rank::world]  # (B / world, L)
        with autocast(model, bf16):
            student_logits = model(inputs, labels).float()  # (N, V)
            targets = labels[labels != IGNORE].to(student_logits.device)
            if teacher is None or weights.beta == 0:
                ce = torch.nn.functional.cross_entropy(student_logits, targets)
                return (ce, ce.new_zeros(())) if terms else ce
            with torch.no_grad():

                def states() -> torch.Tensor:  # (N, H) at the masked positions
                    hidden = encoder(input_ids=inputs.to(device)).last_hidden_state
                    return hidden[(labels != IGNORE).to(device)]

                masked = states() if teacher_key is None else TEACHER_STATES.get(teacher_key, step, states)
                teacher_logits = head(masked).float()  # (N, V)
        ce, kd = kd_terms(student_logits, teacher_logits, targets, weights)
        return (ce, kd) if terms else ce + kd

    return loss_fn


def first_step_ratio(model: nn.Module, terms_fn, seed: int) -> float:
    """`grad_norm_ratio` of the first training step: initial weights, step 0's batch, masking and
    dropout (`ose.training.loop.train` seeds them the same way); this rank's slice of the batch."""
    model.train()
    torch.manual_seed(step_seed(seed, 0))
    return grad_norm_ratio(model, lambda: terms_fn(model, 0, step_generator(seed, 0)))


def run(job: PretrainJob, rank: int = 0, world: int = 1, progress: bool = True) -> list[dict]:
    """Train the student of `job`; rank 0 saves it and its history. Returns the history."""
    if job.threads:
        torch.set_num_threads(job.threads)
    config = MaskedLMTraining(**job.config)
    weights = KDWeights(**job.weights)
    tokenizer = AutoTokenizer.from_pretrained(job.teacher_dir)
    teacher = AutoModelForMaskedLM.from_pretrained(job.teacher_dir).eval() if job.uses_teacher else None
    if teacher is not None:
        teacher.requires_grad_(False)
    blocks, _ = load_blocks(job.corpus_dir)
    embedding = Embedding(**job.embedding)
    student = initial_student(job, teacher, blocks["train"], embedding)
    device = worker_device()
    student.to(device)
    if teacher is not None:
        teacher.to(device)
    wrapped: nn.Module = MaskedLogits(student)
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(wrapped)
    heldout_seed = job.seed if job.heldout_seed is None else job.heldout_seed
    evaluate = heldout_evaluator(
        blocks["heldout"][: config.eval_blocks], tokenizer, EVAL_BATCH_SIZE, heldout_seed
    )
    blocks_digest = tensor_digest(blocks["train"])
    teacher_digest = state_digest(teacher) if teacher is not None else None
    teacher_key = mapping_digest(
        {
            "teacher": teacher_digest,
            "blocks": blocks_digest,
            "seed": job.seed,
            "batch": [config.batch_size, config.mask_prob, config.bf16, rank, world],
            "device": str(device),
        }
    )
    step_args = (blocks["train"], config.batch_size, tokenizer, embedding.vocab_size, teacher, weights)
    step_args += (rank, world, config.mask_prob, config.bf16, teacher_key)
    loss_fn = kd_step_loss(*step_args)
    ratio = first_step_ratio(MaskedLogits(student), kd_step_loss(*step_args, terms=True), job.seed)
    run_key = {
        "init": job.init,
        "inherit": job.inherit,
        "blocks": blocks_digest,
        "world": world,
        "weights": job.weights,
        "arch": job.arch,
        "embedding": job.embedding,
        "tokenizer": tokenizer_digest(tokenizer),
        "teacher": teacher_digest,
        "heldout": evaluate.identity,  # the wrapper below hides it from `train`
    }
    history = train(
        wrapped,
        loss_fn,
        config,
        job.seed,
        job.checkpoint_dir,
        lambda _: evaluate(student),
        progress,
        run_key=run_key,
    )
    history = [{"step": 0, "grad_norm_ratio": ratio}, *history]
    if rank == 0:
        save_pretrained(student.cpu(), tokenizer, job.out_dir)
        write_history(history, job)
    return history


def initial_student(job: PretrainJob, teacher, train_blocks: torch.Tensor, embedding: Embedding) -> nn.Module:
    """The student before training: random init (seeded), or sliced from the teacher
    (`ose.training.inherit`)."""
    arch = Arch.parse(job.arch)
    if job.init == "random":
        return build_model(arch, embedding, head="mlm", seed=job.seed)
    if job.init != "inherited":
        raise ValueError(f"init must be 'random' or 'inherited', got {job.init!r}")
    settings = job.inherit or {}
    rows = calibration_rows(len(train_blocks), settings.get("calibration_blocks", 64), job.seed)
    student = inherit(
        teacher,
        arch,
        train_blocks[rows],
        layers=settings.get("layers", "bottom"),
        every=settings.get("every"),
    )
    return student.train()


def write_history(history: list[dict], job: PretrainJob) -> None:
    """The history beside the student without wall-clock times, with them beside the checkpoint.

    The student folder is a dependency of later stages: an identical retrain must give identical
    bytes, so timings (which `launch` returns) live in the checkpoint folder, which nothing reads.
    """
    untimed = [{k: v for k, v in h.items() if k != "seconds"} for h in history]
    write_text_atomic(Path(job.out_dir) / HISTORY, json.dumps(untimed, indent=1) + "\n")
    write_text_atomic(Path(job.checkpoint_dir) / HISTORY, json.dumps(history, indent=1) + "\n")


def write_job(job: PretrainJob, path: str | Path) -> Path:
    write_text_atomic(path, json.dumps(asdict(job), indent=2) + "\n")
    return Path(path)


def launch(job: PretrainJob, nproc: int = 1, progress: bool = True) -> list[dict]:
    """Run `job` in this process (nproc = 1) or under torchrun with `nproc` workers."""
    if nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc}")
    if nproc == 1:
        return run(job, progress=progress)
    torchrun(
        "ose.training.pretraining",
        write_job(job, Path(job.checkpoint_dir) / "job.json"),
        nproc,
        job.threads or 1,
    )
    return json.loads((Path(job.checkpoint_dir) / HISTORY).read_text())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(
            "usage: torchrun --standalone --nproc_per_node=N -m ose.training.pretraining JOB.json",
            file=sys.stderr,
        )
        return 2
    job = PretrainJob(**json.loads(Path(argv[0]).read_text()))
    with process_group() as (rank, world):
        run(job, rank, world)
    return 0


def check_loads(directory: str | Path) -> Arch:
    """The saved student loads with `AutoModel` and `AutoModelForMaskedLM` (and its tokenizer)."""
    from transformers import AutoModel

    from ose.arch import from_bert_config

    AutoTokenizer.from_pretrained(directory)
    with quietly():  # AutoModel reports the MLM head it skips and the pooler it adds
        encoder = AutoModel.from_pretrained(directory)
        masked_lm = AutoModelForMaskedLM.from_pretrained(directory)
    arch, _ = from_bert_config(masked_lm.config)
    if from_bert_config(encoder.config)[0] != arch:
        raise ValueError(f"{directory}: AutoModel and AutoModelForMaskedLM disagree on the architecture")
    return arch


def first_step_grad_ratio(history: list[dict]) -> float:
    """The KD term's gradient norm over the CE term's at the first step, as `run` recorded it."""
    return next(h["grad_norm_ratio"] for h in history if "grad_norm_ratio" in h)


def final_evaluation(history: list[dict]) -> dict:
    """The last held-out evaluation of a training history."""
    evaluations = [h for h in history if "masked_acc" in h]
    if not evaluations:
        raise ValueError("the history holds no held-out evaluation")
    return evaluations[-1]


if __name__ == "__main__":
    sys.exit(main())
