"""Stage `pretrain`: the extracted ξ pretrained in arms that differ only in initialisation and loss.

`pretrain.arms` (`ose.configs.PRETRAIN_ARMS`): `kd`, random init + knowledge distillation (the
paper's recipe); `mlm`, random init + masked-LM only (the control for "distillation helps");
`inherited_kd`, ξ sliced from the teacher's weights (`ose.training.inherit`) + KD, an extension beyond the
paper. All train the same ξ on the same data, steps, batches and masking (same seed), resumably and
over `pretrain.nproc` processes (`ose.training.pretraining.launch`), and are saved with `save_pretrained`. The
teacher is scored on the same held-out blocks (one fixed masking) for reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from ose.configs import PRETRAIN_ARMS
from ose.data.prepare import load_blocks
from ose.params import Params
from ose.pipeline.dvcfile import paths_class
from ose.pipeline.machine import machine_info
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult, markdown_table, write_table
from ose.reporting import figures
from ose.reporting.markdown import claim_row, figure, produced_by
from ose.search.extraction import load_teacher, read_extracted
from ose.stages.teacher import Result as TeacherResult
from ose.training.distill import MLM_ONLY
from ose.training.loop import tokens_per_second
from ose.training.mlm import EVAL_BATCH_SIZE
from ose.training.pretraining import PretrainJob, check_loads, final_evaluation, launch
from ose.training.source_model import heldout_evaluator

# How each arm is labelled in tables and figures; `inherited_kd` is marked as beyond the paper.
LABELS = {
    "kd": "random init + KD (paper)",
    "mlm": "random init + MLM only",
    "inherited_kd": "inherited init + KD (extension)",
    "inherited_mlm": "inherited init + MLM only (extension)",
}


class Paths(paths_class("pretrain")):
    """The notebook's path parameters; defaults: what dvc.yaml passes (`ose.pipeline.dvcfile`).
    One folder per arm: `student_dir` kd (which later stages read), `baseline_dir` mlm,
    `inherited_dir` inherited_kd, `inherited_mlm_dir` inherited_mlm."""

    def arm_dir(self, arm: str) -> Path:
        folders = {
            "kd": self.student_dir,
            "mlm": self.baseline_dir,
            "inherited_kd": self.inherited_dir,
            "inherited_mlm": self.inherited_mlm_dir,
        }
        return resolve(folders[arm])


@dataclass(frozen=True)
class Result(StageResult):
    """reports/metrics/pretrain.json. `arms[arm]`: held-out masked_acc, mlm_ce, steps, train seconds,
    tokens per second, init, loss, and the fraction of the teacher's masked-token accuracy."""

    profile: str
    arch: str
    params: int
    steps: int
    arms: dict[str, dict]
    teacher_heldout_mlm_ce: float
    teacher_heldout_masked_acc: float
    nproc: int
    kd_weights: dict
    mask_prob: float
    bf16: bool
    inherit: dict
    distillation_helps: dict[str, bool]  # per init: KD beats MLM-only (random init only when both ran)
    seconds: float  # wall-clock training time of all arms
    machine: dict


def jobs(params: Params, arch: str, embedding, paths: Paths) -> dict[str, PretrainJob]:
    """One job per arm of `pretrain.arms`: same ξ, recipe, data and seed; init and loss differ."""
    cfg = params.pretrain
    result = {}
    for arm in cfg.arms:
        init, loss = PRETRAIN_ARMS[arm]
        result[arm] = PretrainJob(
            arch=arch,
            embedding=asdict(embedding),
            teacher_dir=str(resolve(paths.teacher_dir)),
            corpus_dir=str(resolve(paths.corpus_dir)),
            out_dir=str(paths.arm_dir(arm)),
            checkpoint_dir=str(resolve(paths.checkpoint_dir) / arm),
            config=asdict(cfg.recipe()),
            seed=params.seed,
            weights=asdict(params.distill if loss == "kd" else MLM_ONLY),
            init=init,
            inherit=asdict(cfg.inherit) if init == "inherited" else None,
        )
    return result


def train_seconds(history: list[dict]) -> float:
    """Wall-clock seconds at the last training step of a history."""
    return [h for h in history if "loss" in h][-1]["seconds"]


def arm_row(arm: str, history: list[dict], teacher_acc: float, tokens_per_step: int) -> dict:
    """One arm's final held-out scores, its cost, and its accuracy as a fraction of the teacher's."""
    final = final_evaluation(history)
    init, loss = PRETRAIN_ARMS[arm]
    return {
        "arm": arm,
        "label": LABELS[arm],
        "init": init,
        "loss": loss,
        "masked_acc": final["masked_acc"],
        "mlm_ce": final["mlm_ce"],
        "fraction_of_teacher_acc": final["masked_acc"] / teacher_acc,
        "steps": final["step"],
        "seconds": train_seconds(history),
        "tokens_per_second": tokens_per_second(history, tokens_per_step),
    }


def distillation_verdicts(arms: dict[str, dict]) -> dict[str, bool]:
    """Does KD beat MLM-only at equal budget, per init? kd vs mlm (random init) and inherited_kd vs
    inherited_mlm (inherited init), on held-out masked-token accuracy; an init whose two arms did
    not both run has no verdict."""
    pairs = {"random": ("kd", "mlm"), "inherited": ("inherited_kd", "inherited_mlm")}
    return {
        init: arms[kd]["masked_acc"] > arms[mlm]["masked_acc"]
        for init, (kd, mlm) in pairs.items()
        if kd in arms and mlm in arms
    }


def run(params: Params, paths: Paths | None = None, progress: bool = True) -> tuple[Result, dict]:
    """Train every arm, check the saved students load as ξ, write the table, the figure, the metrics.

    Returns the metrics and what the notebook shows: the figure's path and the arms' table (markdown).
    """
    paths = paths or Paths()
    cfg = params.pretrain
    arch, extracted = read_extracted(resolve(paths.extracted_dir))
    teacher, tokenizer, teacher_arch, embedding = load_teacher(resolve(paths.teacher_dir))
    blocks, _ = load_blocks(resolve(paths.corpus_dir))
    block_size = blocks["train"].shape[1]
    print(
        f"profile {params.profile!r}: student {arch.name} ({extracted['params']['total']:,} parameters) "
        f"from teacher {teacher_arch.name}; arms {cfg.arms}; {cfg.steps} steps of "
        f"{cfg.batch_size} × {block_size} tokens each, {cfg.mask_prob:.0%} masked, "
        f"{'bf16 autocast' if cfg.bf16 else 'fp32'}, {cfg.nproc} process(es)"
    )
    heldout = blocks["heldout"][: cfg.eval_blocks]
    teacher_heldout = heldout_evaluator(heldout, tokenizer, EVAL_BATCH_SIZE, params.seed)(teacher)
    print(f"teacher: held-out masked-token accuracy {teacher_heldout['masked_acc']:.4f}")
    del teacher
    histories, rows = {}, {}
    for arm, job in jobs(params, arch.name, embedding, paths).items():
        histories[arm] = launch(job, nproc=cfg.nproc, progress=progress)
        rows[arm] = arm_row(arm, histories[arm], teacher_heldout["masked_acc"], cfg.batch_size * block_size)
        print(
            f"{LABELS[arm]}: held-out masked-token accuracy {rows[arm]['masked_acc']:.4f} "
            f"({rows[arm]['fraction_of_teacher_acc']:.0%} of the teacher's), {rows[arm]['seconds']:.0f} s"
        )
        loaded = check_loads(paths.arm_dir(arm))
        if loaded != arch:
            raise RuntimeError(f"arm {arm} loads as {loaded.name}, not the extracted {arch.name}")

    table_rows = [
        {
            "model": f"teacher {teacher_arch.name}",
            "masked_acc": teacher_heldout["masked_acc"],
            "mlm_ce": teacher_heldout["mlm_ce"],
            "fraction_of_teacher_acc": 1.0,
            "steps": "",  # the teacher stage's own
            "seconds": "",
        },
        *(
            {
                "model": f"{arch.name}, {row['label']}",
                **{
                    k: row[k] for k in ("masked_acc", "mlm_ce", "fraction_of_teacher_acc", "steps", "seconds")
                },
            }
            for row in rows.values()
        ),
    ]
    write_table(
        resolve(paths.tables_dir) / "pretrain_arms",
        table_rows,
        title="Held-out masked-LM scores of the pretraining arms (one fixed masking)",
        digits=4,
    )
    figure = resolve(paths.figures_dir) / "pretrain_curves.png"
    fig = figures.pretraining_curves({LABELS[a]: h for a, h in histories.items()}, teacher_heldout)
    figures.save(fig, figure)
    plt.close(fig)

    result = Result(
        profile=params.profile,
        arch=arch.name,
        params=extracted["params"]["total"],
        steps=cfg.steps,
        arms=rows,
        teacher_heldout_mlm_ce=teacher_heldout["mlm_ce"],
        teacher_heldout_masked_acc=teacher_heldout["masked_acc"],
        nproc=cfg.nproc,
        kd_weights=asdict(params.distill),
        mask_prob=cfg.mask_prob,
        bf16=cfg.bf16,
        inherit=asdict(cfg.inherit),
        distillation_helps=distillation_verdicts(rows),
        seconds=sum(row["seconds"] for row in rows.values()),
        machine=machine_info(),
    )
    result.write(resolve(paths.metrics_file))
    return result, {"pretrain_curves.png": figure, "arms": markdown_table(table_rows, digits=4)}


# --- The report's section and claims rows (`ose.stages.report` assembles the report) ---


def _kd_verdict(init: str, helps: bool, arms: dict[str, dict]) -> str:
    kd, mlm = {"random": ("kd", "mlm"), "inherited": ("inherited_kd", "inherited_mlm")}[init]
    a, b = arms[kd]["masked_acc"], arms[mlm]["masked_acc"]
    return (
        f"from {init} init, distillation **{'helps' if helps else 'does not help'}** over masked-LM "
        f"training alone (held-out masked-token accuracy {a:.3f} against {b:.3f})"
    )


def pretraining_section(teacher: TeacherResult, m: Result) -> str:
    rows = [
        {
            "model": f"teacher before adaptation ({teacher.arch})",
            "masked-token accuracy": teacher.masked_acc_before,
            "masked-LM cross-entropy": teacher.mlm_ce_before,
            "of teacher's accuracy": None,
            "steps": None,
            "train seconds": None,
        },
        {
            "model": f"teacher after {teacher.steps} steps",
            "masked-token accuracy": teacher.masked_acc_after,
            "masked-LM cross-entropy": teacher.mlm_ce_after,
            "of teacher's accuracy": 1.0,
            "steps": teacher.steps,
            "train seconds": teacher.train_seconds,
        },
    ]
    rows += [
        {
            "model": f"student {m.arch}, {LABELS[arm]}",
            "masked-token accuracy": row["masked_acc"],
            "masked-LM cross-entropy": row["mlm_ce"],
            "of teacher's accuracy": row["fraction_of_teacher_acc"],
            "steps": row["steps"],
            "train seconds": row["seconds"],
        }
        for arm, row in m.arms.items()
    ]
    verdicts = "; ".join(_kd_verdict(init, helps, m.arms) for init, helps in m.distillation_helps.items())
    inherited = m.arms.get("inherited_kd")
    inherited_line = (
        f" The inherited student (an extension beyond the paper, `ose.training.inherit`) reaches "
        f"**{inherited['fraction_of_teacher_acc']:.0%}** of the teacher's held-out masked-token accuracy "
        f"({inherited['masked_acc']:.3f} against {m.teacher_heldout_masked_acc:.3f})."
        if inherited
        else ""
    )
    return (
        "## 4. Teacher and pretraining arms\n\n"
        f"{produced_by(m, 'teacher', 'pretrain')}"
        "Held-out text, the same fixed masking (15%) for every row; every arm trains the same ξ on the same "
        f"data, steps, batches and masking ({m.mask_prob:.0%} masked in training"
        f"{', bf16 autocast' if m.bf16 else ''}), differing only in initialisation and loss:\n\n"
        f"{markdown_table(rows, digits=4)}\nAt this budget ({m.steps} steps per arm), {verdicts}."
        f"{inherited_line}\n\n"
        f"{figure('pretrain_curves.png', 'Pretraining arms: held-out masked-LM curves')}\n"
    )


def _kd_claim(p: Result | None) -> dict:
    claim = "Pretraining the extracted ξ by knowledge distillation (vs masked-LM alone)"
    if not p or "random" not in (p.distillation_helps or {}):
        return claim_row(claim, "KD pretraining", "not run", "not testable here", "§4, `dvc repro pretrain`")
    kd, mlm = p.arms["kd"], p.arms["mlm"]
    here = (
        f"random init, {p.steps} steps: KD {kd['masked_acc']:.3f} vs MLM-only {mlm['masked_acc']:.3f} "
        f"held-out masked-token accuracy (teacher {p.teacher_heldout_masked_acc:.3f})"
    )
    if "inherited_kd" in p.arms:
        here += f"; inherited init + KD (extension) {p.arms['inherited_kd']['masked_acc']:.3f}"
    verdict = "reproduced at reduced scale" if p.distillation_helps["random"] else "not reproduced"
    return claim_row(
        claim, "Bort is pretrained by KD from RoBERTa-large", here, verdict, "§4, `dvc repro pretrain`"
    )


def claims(m: Result | None) -> list[dict]:
    """This stage's row of the report's claims table: distillation against masked-LM alone."""
    return [_kd_claim(m)]
