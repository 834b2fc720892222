"""Stage `pretrain`: the extracted ξ pretrained by knowledge distillation, and an MLM-only baseline.

Both runs train the same ξ on the same budget (`params.pretrain`), resumably and over
`pretrain.nproc` processes (`ose.pretrain.launch`); the baseline uses the masked-LM loss alone
(`ose.distill.MLM_ONLY`). The teacher is scored on the same held-out blocks for reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from ose import figures
from ose.data import load_blocks
from ose.distill import MLM_ONLY
from ose.extract import load_teacher, read_extracted
from ose.machine import machine_info
from ose.mlm import EVAL_BATCH_SIZE
from ose.params import Params
from ose.paths import resolve
from ose.pretrain import PretrainJob, check_loads, final_evaluation, launch
from ose.results import StageResult
from ose.teacher import heldout_evaluator
from ose.training import tokens_per_second

DISTILLED, MLM = "distilled", "MLM only"  # the two runs, as labelled in the figure


@dataclass(frozen=True)
class Paths:
    teacher_dir: str | Path = "models/teacher"
    corpus_dir: str | Path = "data/corpus"
    extracted_dir: str | Path = "models/extracted"
    student_dir: str | Path = "models/student"
    baseline_dir: str | Path = "models/student_mlm_only"
    checkpoint_dir: str | Path = "models/pretrain_checkpoints"
    metrics_file: str | Path = "reports/metrics/pretrain.json"
    figures_dir: str | Path = "reports/figures"


@dataclass(frozen=True)
class Result(StageResult):
    profile: str
    arch: str
    params: int
    steps: int
    heldout_mlm_ce: float
    heldout_masked_acc: float
    teacher_heldout_mlm_ce: float
    teacher_heldout_masked_acc: float
    tokens_per_second: float | None  # of the distilled run
    seconds: float  # wall-clock training time of the distilled run
    nproc: int
    kd_weights: dict
    mlm_only_heldout_mlm_ce: float
    mlm_only_heldout_masked_acc: float
    distillation_helps: bool  # the distilled student's held-out accuracy beats the baseline's
    machine: dict


def jobs(params: Params, arch: str, embedding, paths: Paths) -> dict[str, PretrainJob]:
    """The distilled run and the MLM-only baseline, by label: same ξ, recipe and seed."""
    runs = {DISTILLED: (paths.student_dir, params.distill), MLM: (paths.baseline_dir, MLM_ONLY)}
    return {
        label: PretrainJob(
            arch=arch,
            embedding=asdict(embedding),
            teacher_dir=str(resolve(paths.teacher_dir)),
            corpus_dir=str(resolve(paths.corpus_dir)),
            out_dir=str(resolve(out_dir)),
            checkpoint_dir=str(resolve(paths.checkpoint_dir) / label.replace(" ", "_")),
            config=asdict(params.pretrain),
            seed=params.seed,
            weights=asdict(weights),
        )
        for label, (out_dir, weights) in runs.items()
    }


def train_seconds(history: list[dict]) -> float:
    """Wall-clock seconds at the last training step of a history."""
    return [h for h in history if "loss" in h][-1]["seconds"]


def run(params: Params, paths: Paths = Paths(), progress: bool = True) -> tuple[Result, dict]:
    """Train both students, check the saved student loads, write the figure and the metrics.

    Returns the metrics and what the notebook shows: the figure's path and the teacher's held-out scores.
    """
    cfg = params.pretrain
    arch, extracted = read_extracted(resolve(paths.extracted_dir))
    teacher, tokenizer, teacher_arch, embedding = load_teacher(resolve(paths.teacher_dir))
    blocks, _ = load_blocks(resolve(paths.corpus_dir))
    block_size = blocks["train"].shape[1]
    print(
        f"profile {params.profile!r}: student {arch.name} ({extracted['params']['total']:,} parameters) "
        f"from teacher {teacher_arch.name}; {cfg.steps} steps of {cfg.batch_size} × {block_size} tokens, "
        f"{cfg.nproc} process(es)"
    )
    histories = {}
    for label, job in jobs(params, arch.name, embedding, paths).items():
        histories[label] = launch(job, nproc=cfg.nproc, progress=progress)
        print(label, final_evaluation(histories[label]))

    heldout = blocks["heldout"][: cfg.eval_blocks]
    teacher_heldout = heldout_evaluator(heldout, tokenizer, EVAL_BATCH_SIZE, params.seed)(teacher)
    print("teacher", teacher_heldout)
    loaded = check_loads(resolve(paths.student_dir))
    if loaded != arch:
        raise RuntimeError(f"the saved student loads as {loaded.name}, not the extracted {arch.name}")
    figure = resolve(paths.figures_dir) / "pretrain_curves.png"
    fig = figures.pretraining_curves(histories, teacher_heldout)
    figures.save(fig, figure)
    plt.close(fig)

    distilled, baseline = final_evaluation(histories[DISTILLED]), final_evaluation(histories[MLM])
    result = Result(
        profile=params.profile,
        arch=arch.name,
        params=extracted["params"]["total"],
        steps=cfg.steps,
        heldout_mlm_ce=distilled["mlm_ce"],
        heldout_masked_acc=distilled["masked_acc"],
        teacher_heldout_mlm_ce=teacher_heldout["mlm_ce"],
        teacher_heldout_masked_acc=teacher_heldout["masked_acc"],
        tokens_per_second=tokens_per_second(histories[DISTILLED], cfg.batch_size * block_size),
        seconds=train_seconds(histories[DISTILLED]),
        nproc=cfg.nproc,
        kd_weights=asdict(params.distill),
        mlm_only_heldout_mlm_ce=baseline["mlm_ce"],
        mlm_only_heldout_masked_acc=baseline["masked_acc"],
        distillation_helps=distilled["masked_acc"] > baseline["masked_acc"],
        machine=machine_info(),
    )
    result.write(resolve(paths.metrics_file))
    return result, {"pretrain_curves.png": figure}
