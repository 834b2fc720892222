"""Stage `pretrain`: the extracted ξ pretrained in arms that differ only in initialisation and loss.

`pretrain.arms` (`ose.configs.PRETRAIN_ARMS`), each from random init and, an extension beyond the paper,
from ξ sliced from the teacher's weights (`ose.training.inherit`): `kd`, textbook distillation
(`distill.alpha`, T; the paper's recipe as intended, the student later stages read), `kd_released`,
alexa/bort's loss as its released code computes it (`distill.released`), and `mlm`, masked-LM only (the
control for "distillation helps"). All train the same ξ on the same data, steps, batches and masking
(same seed), resumably and over `pretrain.nproc` processes (`ose.training.pretraining.launch`), and are
saved with `save_pretrained`. `pretrain.seeded_arms` run once per seed of `pretrain.seeds`, paired; the
others the first seed only. Each init's lr comes from a short sweep of its `kd` arm (`pretrain.lr_sweep`,
`choose_lr`). Every arm and the teacher are scored on the same held-out blocks, one fixed masking
(seed `seed`, whatever the arm's seed). Verdicts (`distillation_verdicts`) read cross-entropy and
accuracy against the seeds' spread (`seed_noise`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt

from ose import verdicts
from ose.configs import PRETRAIN_ARMS, Pretrain
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
from ose.training.distill import MLM_ONLY, KDWeights
from ose.training.loop import tokens_per_second
from ose.training.mlm import EVAL_BATCH_SIZE
from ose.training.pretraining import (
    PretrainJob,
    check_loads,
    final_evaluation,
    first_step_grad_ratio,
    launch,
)
from ose.training.source_model import heldout_evaluator

# How each arm is labelled in tables and figures; inherited init is marked as beyond the paper.
LABELS = {
    "kd": "random init + KD (paper, as intended)",
    "kd_released": "random init + KD as released (paper's code)",
    "mlm": "random init + MLM only",
    "inherited_kd": "inherited init + KD (extension)",
    "inherited_kd_released": "inherited init + KD as released (extension)",
    "inherited_mlm": "inherited init + MLM only (extension)",
}
KD_FORMS = ("kd", "kd_released")  # the losses a verdict compares with `mlm`
MEASURES = {"mlm_ce": -1, "masked_acc": 1}  # held-out measure: the sign of "better"
WITHIN_NOISE = "within seed noise"


class Paths(paths_class("pretrain")):
    """The notebook's path parameters; defaults: what dvc.yaml passes (`ose.pipeline.dvcfile`).
    At the first seed: `student_dir` kd (which later stages read), `baseline_dir` mlm, `inherited_dir`
    inherited_kd, `inherited_mlm_dir` inherited_mlm; every other run (arm and seed) in
    `arms_dir/<run name>`."""

    def arm_dir(self, arm: str, run: str | None = None) -> Path:
        folders = {
            "kd": self.student_dir,
            "mlm": self.baseline_dir,
            "inherited_kd": self.inherited_dir,
            "inherited_mlm": self.inherited_mlm_dir,
        }
        if run in (None, arm) and arm in folders:
            return resolve(folders[arm])
        return resolve(self.arms_dir) / (run or arm)


@dataclass(frozen=True)
class Result(StageResult):
    """reports/metrics/pretrain.json. `arms[arm]`: at the first seed, held-out masked_acc, mlm_ce, steps,
    train seconds, tokens per second, init, loss, lr, the first step's gradient-norm ratio and the
    fraction of the teacher's masked-token accuracy; `by_seed` (seed → those scores) and their means
    over seeds, `mean_masked_acc` and `mean_mlm_ce`, which the verdicts read."""

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
    distillation_helps: dict[str, bool]  # per init: textbook KD's verdict against MLM-only is "helps"
    seconds: float  # wall-clock training time of all arms and the sweep
    machine: dict
    seeds: list[int] = dataclasses.field(default_factory=list)
    seeded_arms: list[str] = dataclasses.field(default_factory=list)
    lr_sweep: dict = dataclasses.field(default_factory=dict)  # init → {steps, rows: [{lr, ...}], chosen}
    seed_noise: dict = dataclasses.field(default_factory=dict)  # measure → noise (`seed_noise`), or None
    verdicts: dict = dataclasses.field(default_factory=dict)  # init → KD form → `distillation_verdict`


def run_name(arm: str, seed: int, first_seed: int) -> str:
    """A run's name: the arm at the first seed (the one later stages read), else `<arm>_seed<seed>`."""
    return arm if seed == first_seed else f"{arm}_seed{seed}"


def arm_runs(cfg: Pretrain) -> list[tuple[str, int]]:
    """(arm, seed) of every run: each arm at the first seed, in `arms` order, then the seeded arms at
    the other seeds (so runs that share batches, hence the teacher's states, follow each other)."""
    first, *others = cfg.seeds
    return [(arm, first) for arm in cfg.arms] + [
        (arm, seed) for seed in others for arm in cfg.arms if arm in cfg.seeded_arms
    ]


def loss_weights(params: Params, loss: str) -> KDWeights:
    return {
        "kd": params.distill.textbook(),
        "kd_released": params.distill.released.weights(),
        "mlm": MLM_ONLY,
    }[loss]


def _job(params: Params, arch: str, embedding, paths: Paths, arm: str, seed: int, **kwargs) -> PretrainJob:
    init, loss = PRETRAIN_ARMS[arm]
    return PretrainJob(
        arch=arch,
        embedding=asdict(embedding),
        teacher_dir=str(resolve(paths.teacher_dir)),
        corpus_dir=str(resolve(paths.corpus_dir)),
        seed=seed,
        weights=asdict(loss_weights(params, loss)),
        init=init,
        inherit=asdict(params.pretrain.inherit) if init == "inherited" else None,
        heldout_seed=params.seed,
        **kwargs,
    )


def jobs(params: Params, arch: str, embedding, paths: Paths, lrs: dict[str, float] | None = None) -> dict:
    """One job per run (`arm_runs`), by run name: same ξ, recipe and data; init, loss and seed differ.
    `lrs`: each init's lr (from the sweep); an init not in it trains with `pretrain.lr`."""
    cfg = params.pretrain
    result = {}
    for arm, seed in arm_runs(cfg):
        name = run_name(arm, seed, cfg.seeds[0])
        lr = (lrs or {}).get(PRETRAIN_ARMS[arm][0], cfg.lr)
        result[name] = _job(
            params,
            arch,
            embedding,
            paths,
            arm,
            seed,
            out_dir=str(paths.arm_dir(arm, name)),
            checkpoint_dir=str(resolve(paths.checkpoint_dir) / name),
            config=asdict(replace(cfg.recipe(), lr=lr)),
        )
    return result


def sweep_inits(cfg: Pretrain) -> list[str]:
    """The inits whose lr is swept: those of the arms, in order (none when `lr_sweep.lrs` is empty)."""
    inits = dict.fromkeys(PRETRAIN_ARMS[arm][0] for arm in cfg.arms)
    return list(inits) if cfg.lr_sweep.lrs else []


def sweep_jobs(params: Params, arch: str, embedding, paths: Paths) -> dict[tuple[str, float], PretrainJob]:
    """(init, lr) → that init's `kd` arm shortened to `lr_sweep.steps`, warm-up scaled, evaluated at its
    end only, at the first seed; checkpoints (hence the resumable results) under `checkpoint_dir/lr_sweep`."""
    cfg = params.pretrain
    steps = cfg.lr_sweep.steps
    recipe = replace(
        cfg.recipe(),
        steps=steps,
        warmup_steps=round(cfg.warmup_steps * steps / cfg.steps),
        eval_every=0,
        checkpoint_every=steps,
    )
    result = {}
    for init in sweep_inits(cfg):
        arm = "kd" if init == "random" else "inherited_kd"
        for lr in cfg.lr_sweep.lrs:
            folder = resolve(paths.checkpoint_dir) / "lr_sweep" / f"{init}_lr{lr:g}"
            result[(init, lr)] = _job(
                params,
                arch,
                embedding,
                paths,
                arm,
                cfg.seeds[0],
                out_dir=str(folder / "student"),
                checkpoint_dir=str(folder),
                config=asdict(replace(recipe, lr=lr)),
            )
    return result


def choose_lr(rows: list[dict]) -> float:
    """The swept lr with the lowest held-out masked-LM cross-entropy (ties: the smaller lr)."""
    return min(rows, key=lambda r: (r["mlm_ce"], r["lr"]))["lr"]


def train_seconds(history: list[dict]) -> float:
    """Wall-clock seconds at the last training step of a history."""
    return [h for h in history if "loss" in h][-1]["seconds"]


def arm_row(arm: str, history: list[dict], teacher_acc: float, tokens_per_step: int, **extra) -> dict:
    """One run's final held-out scores, its first step's gradient-norm ratio, its cost, and its accuracy
    as a fraction of the teacher's; `extra` (seed, lr) is added as it is."""
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
        "grad_norm_ratio": first_step_grad_ratio(history),
        "steps": final["step"],
        "seconds": train_seconds(history),
        "tokens_per_second": tokens_per_second(history, tokens_per_step),
        **extra,
    }


def arm_summaries(runs: dict[str, dict], first_seed: int) -> dict[str, dict]:
    """arm → its first seed's row, with `by_seed` (seed → scores) and the means over its seeds."""
    out = {}
    for row in runs.values():
        arm = row["arm"]
        if row["seed"] == first_seed:
            out[arm] = {**row, "by_seed": {}}
    for row in runs.values():
        keep = ("masked_acc", "mlm_ce", "grad_norm_ratio", "seconds")
        out[row["arm"]]["by_seed"][str(row["seed"])] = {k: row[k] for k in keep}
    for summary in out.values():
        for measure in MEASURES:
            values = [s[measure] for s in summary["by_seed"].values()]
            summary[f"mean_{measure}"] = sum(values) / len(values)
    return out


def seed_noise(arms: dict[str, dict]) -> dict[str, float | None]:
    """Seed noise per measure: the largest max − min across seeds of one arm's final held-out measure,
    over the arms run at two seeds or more (`by_seed`); None when no arm was."""
    noise = {}
    for measure in MEASURES:
        spreads = [
            max(v) - min(v)
            for v in ([s[measure] for s in a["by_seed"].values()] for a in arms.values())
            if len(v) >= 2
        ]
        noise[measure] = max(spreads) if spreads else None
    return noise


def reading(kd: float, mlm: float, measure: str, noise: float | None) -> str:
    """KD against MLM-only on one measure: "better" or "worse" (lower cross-entropy, higher accuracy
    is better), or "within seed noise" when |kd − mlm| ≤ the seeds' spread (no noise measured: a tie)."""
    if verdicts.within_noise(kd - mlm, noise or 0.0):  # the verdict rules' rule 4
        return WITHIN_NOISE
    return "better" if MEASURES[measure] * (kd - mlm) > 0 else "worse"


def distillation_verdict(kd: dict, mlm: dict, noise: dict[str, float | None]) -> dict:
    """One KD arm against its MLM-only control, on the means over their seeds of both measures.

    Per measure a `reading`; overall: "helps" when some measure is better and none worse, "hurts" when
    some is worse and none better, "mixed" when one is better and one worse, "within seed noise" when
    both are."""
    per = {
        m: {
            "kd": kd[f"mean_{m}"],
            "mlm": mlm[f"mean_{m}"],
            "difference": kd[f"mean_{m}"] - mlm[f"mean_{m}"],
            "noise": noise.get(m),
            "reading": reading(kd[f"mean_{m}"], mlm[f"mean_{m}"], m, noise.get(m)),
        }
        for m in MEASURES
    }
    readings = {v["reading"] for v in per.values()}
    if readings == {WITHIN_NOISE}:
        overall = WITHIN_NOISE
    elif "better" in readings:
        overall = "mixed" if "worse" in readings else "helps"
    else:
        overall = "hurts"
    return {**per, "verdict": overall}


def distillation_verdicts(arms: dict[str, dict], noise: dict[str, float | None]) -> dict[str, dict]:
    """init → KD form (kd, kd_released) → `distillation_verdict` against that init's `mlm` arm; a pair
    whose two arms did not both run has none."""
    prefix = {"random": "", "inherited": "inherited_"}
    out = {}
    for init, p in prefix.items():
        found = {
            form: distillation_verdict(arms[p + form], arms[p + "mlm"], noise)
            for form in KD_FORMS
            if p + form in arms and p + "mlm" in arms
        }
        if found:
            out[init] = found
    return out


def _launch_all(jobs: dict, cfg: Pretrain, progress: bool) -> dict:
    return {name: launch(job, nproc=cfg.nproc, progress=progress) for name, job in jobs.items()}


def run(params: Params, paths: Paths | None = None, progress: bool = True) -> tuple[Result, dict]:
    """Sweep each init's lr, train every run, check the saved students load as ξ, write the tables,
    the figure and the metrics.

    Returns the metrics and what the notebook shows: the figure's path and the arms' table (markdown).
    """
    paths = paths or Paths()
    cfg = params.pretrain
    arch, extracted = read_extracted(resolve(paths.extracted_dir))
    teacher, tokenizer, teacher_arch, embedding = load_teacher(resolve(paths.teacher_dir))
    blocks, _ = load_blocks(resolve(paths.corpus_dir))
    block_size = blocks["train"].shape[1]
    tokens_per_step = cfg.batch_size * block_size
    print(
        f"profile {params.profile!r}: student {arch.name} ({extracted['params']['total']:,} parameters) "
        f"from teacher {teacher_arch.name}; arms {cfg.arms} (seeds {cfg.seeds} for {cfg.seeded_arms}); "
        f"{cfg.steps} steps of {cfg.batch_size} × {block_size} tokens each, {cfg.mask_prob:.0%} masked, "
        f"{'bf16 autocast' if cfg.bf16 else 'fp32'}, {cfg.nproc} process(es)"
    )
    heldout = blocks["heldout"][: cfg.eval_blocks]
    teacher_heldout = heldout_evaluator(heldout, tokenizer, EVAL_BATCH_SIZE, params.seed)(teacher)
    print(f"teacher: held-out masked-token accuracy {teacher_heldout['masked_acc']:.4f}")
    del teacher

    # the sweep's short runs train without progress lines: each init's choice is printed below
    sweep_histories = _launch_all(sweep_jobs(params, arch.name, embedding, paths), cfg, progress=False)
    sweep, sweep_rows = {}, []
    for init in sweep_inits(cfg):
        rows = [
            {
                "init": init,
                "lr": lr,
                **{k: final_evaluation(h)[k] for k in MEASURES},
                "seconds": train_seconds(h),
            }
            for (i, lr), h in sweep_histories.items()
            if i == init
        ]
        sweep[init] = {"steps": cfg.lr_sweep.steps, "rows": rows, "chosen": choose_lr(rows)}
        sweep_rows += [{**r, "chosen": r["lr"] == sweep[init]["chosen"]} for r in rows]
        print(f"{init} init: lr {sweep[init]['chosen']:g} (lowest held-out cross-entropy after the sweep)")
    if sweep_rows:
        write_table(
            resolve(paths.tables_dir) / "pretrain_lr_sweep",
            sweep_rows,
            title=f"Learning-rate sweep: each init's KD arm for {cfg.lr_sweep.steps} steps, held-out scores",
            digits=4,
        )

    lrs = {init: s["chosen"] for init, s in sweep.items()}
    histories, runs = {}, {}
    for name, job in jobs(params, arch.name, embedding, paths, lrs).items():
        arm = name.split("_seed")[0]
        histories[name] = launch(job, nproc=cfg.nproc, progress=progress)
        runs[name] = arm_row(
            arm,
            histories[name],
            teacher_heldout["masked_acc"],
            tokens_per_step,
            seed=job.seed,
            lr=job.config["lr"],
        )
        print(
            f"{LABELS[arm]}, seed {job.seed}: held-out masked-token accuracy {runs[name]['masked_acc']:.4f}, "
            f"cross-entropy {runs[name]['mlm_ce']:.4f}; first-step gradient-norm ratio KD/CE "
            f"{runs[name]['grad_norm_ratio']:.3g}; {runs[name]['seconds']:.0f} s"
        )
        loaded = check_loads(job.out_dir)
        if loaded != arch:
            raise RuntimeError(f"run {name} loads as {loaded.name}, not the extracted {arch.name}")
    arms = arm_summaries(runs, cfg.seeds[0])
    noise = seed_noise(arms)
    verdicts = distillation_verdicts(arms, noise)

    table_rows = [
        {
            "model": f"teacher {teacher_arch.name}",
            "seed": "",
            "lr": "",
            "masked_acc": teacher_heldout["masked_acc"],
            "mlm_ce": teacher_heldout["mlm_ce"],
            "fraction_of_teacher_acc": 1.0,
            "grad_norm_ratio": "",
            "steps": "",  # the teacher stage's own
            "seconds": "",
        },
        *(
            {
                "model": f"{arch.name}, {row['label']}",
                **{
                    k: row[k]
                    for k in ("seed", "lr", "masked_acc", "mlm_ce", "fraction_of_teacher_acc")
                    + ("grad_norm_ratio", "steps", "seconds")
                },
            }
            for row in runs.values()
        ),
    ]
    write_table(
        resolve(paths.tables_dir) / "pretrain_arms",
        table_rows,
        title="Held-out masked-LM scores of the pretraining arms (one fixed masking)",
        digits=4,
    )
    figure = resolve(paths.figures_dir) / "pretrain_curves.png"
    fig = figures.pretraining_curves(
        {f"{LABELS[r['arm']]}, seed {r['seed']}": histories[n] for n, r in runs.items()}, teacher_heldout
    )
    figures.save(fig, figure)
    plt.close(fig)

    result = Result(
        profile=params.profile,
        arch=arch.name,
        params=extracted["params"]["total"],
        steps=cfg.steps,
        arms=arms,
        teacher_heldout_mlm_ce=teacher_heldout["mlm_ce"],
        teacher_heldout_masked_acc=teacher_heldout["masked_acc"],
        nproc=cfg.nproc,
        kd_weights={
            "kd": asdict(params.distill.textbook()),
            "kd_released": asdict(params.distill.released.weights()),
        },
        mask_prob=cfg.mask_prob,
        bf16=cfg.bf16,
        inherit=asdict(cfg.inherit),
        distillation_helps={init: v["kd"]["verdict"] == "helps" for init, v in verdicts.items() if "kd" in v},
        seconds=sum(row["seconds"] for row in runs.values())
        + sum(r["seconds"] for s in sweep.values() for r in s["rows"]),
        machine=machine_info(),
        seeds=list(cfg.seeds),
        seeded_arms=list(cfg.seeded_arms),
        lr_sweep=sweep,
        seed_noise=noise,
        verdicts=verdicts,
    )
    result.write(resolve(paths.metrics_file))
    return result, {"pretrain_curves.png": figure, "arms": markdown_table(table_rows, digits=4)}


# --- The report's section and claims rows (`ose.stages.report` assembles the report) ---


def _measures(v: dict) -> str:
    acc, ce = v["masked_acc"], v["mlm_ce"]
    return (
        f"masked-token accuracy {acc['kd']:.3f} against {acc['mlm']:.3f} ({acc['reading']}), "
        f"cross-entropy {ce['kd']:.3f} against {ce['mlm']:.3f} ({ce['reading']})"
    )


def _kd_verdict(init: str, form: str, v: dict) -> str:
    loss = "textbook distillation" if form == "kd" else "the released distillation loss"
    return f"from {init} init, {loss} → **{v['verdict']}** against masked-LM alone: {_measures(v)}"


def _noise_line(m: Result) -> str:
    noise = m.seed_noise or {}
    if noise.get("masked_acc") is None:
        return "No arm ran two seeds, so no seed noise is measured: every difference counts."
    return (
        f"Seed noise (the largest max − min across seeds {m.seeds} of one arm's measure, over "
        f"{', '.join(m.seeded_arms)}): accuracy {noise['masked_acc']:.4f}, cross-entropy "
        f"{noise['mlm_ce']:.4f}; a difference no larger is *within seed noise*. Verdicts compare means "
        "over each arm's seeds; an arm run at one seed borrows this noise."
    )


def _sweep_line(m: Result) -> str:
    if not m.lr_sweep:
        return "The learning rate was not swept."
    parts = []
    for init, s in m.lr_sweep.items():
        swept = ", ".join(f"{r['lr']:g}" for r in s["rows"])
        parts.append(f"{init} init {s['chosen']:g} (of {swept})")
    steps = next(iter(m.lr_sweep.values()))["steps"]
    return (
        f"Each init's lr is the one whose KD arm, run {steps} steps, had the lowest held-out "
        f"cross-entropy (`reports/tables/pretrain_lr_sweep.md`): {'; '.join(parts)}."
    )


def _ratio(x: float | None) -> str:
    """A gradient-norm ratio: 0, or three significant digits (the released loss's is ~1e-6)."""
    return "" if x is None else "0" if x == 0 else f"{x:.3g}"


def pretraining_section(teacher: TeacherResult, m: Result) -> str:
    rows = [
        {
            "model": f"teacher before adaptation ({teacher.arch})",
            "seeds": "",
            "masked-token accuracy": teacher.masked_acc_before,
            "masked-LM cross-entropy": teacher.mlm_ce_before,
            "of teacher's accuracy": "",
            "KD/CE gradient norm": "",
            "lr": "",
            "steps": "",
            "train seconds": "",
        },
        {
            "model": f"teacher after {teacher.steps} steps",
            "seeds": "",
            "masked-token accuracy": teacher.masked_acc_after,
            "masked-LM cross-entropy": teacher.mlm_ce_after,
            "of teacher's accuracy": 1.0,
            "KD/CE gradient norm": "",
            "lr": "",
            "steps": teacher.steps,
            "train seconds": teacher.train_seconds,
        },
    ]
    rows += [
        {
            "model": f"student {m.arch}, {LABELS[arm]}",
            "seeds": ", ".join(row.get("by_seed", {"": None})) or "",
            "masked-token accuracy": row.get("mean_masked_acc", row["masked_acc"]),
            "masked-LM cross-entropy": row.get("mean_mlm_ce", row["mlm_ce"]),
            "of teacher's accuracy": row["fraction_of_teacher_acc"],
            "KD/CE gradient norm": _ratio(row.get("grad_norm_ratio")),
            "lr": f"{row['lr']:g}" if row.get("lr") is not None else "",
            "steps": row["steps"],
            "train seconds": row["seconds"],
        }
        for arm, row in m.arms.items()
    ]
    verdicts = "; ".join(
        _kd_verdict(init, form, v) for init, forms in (m.verdicts or {}).items() for form, v in forms.items()
    )
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
        f"{', bf16 autocast' if m.bf16 else ''}), differing only in initialisation and loss. KD is textbook "
        "distillation, α·CE + (1 − α)·T²·KL; *as released* is alexa/bort's loss as its code computes it "
        "(docs/science.md). Scores of arms run at several seeds are means over them; *KD/CE gradient "
        "norm* is ‖∇ distillation term‖ / ‖∇ CE term‖ at the first step (0: no teacher):\n\n"
        f"{markdown_table(rows, digits=4)}\n{_sweep_line(m)} {_noise_line(m)}\n\n"
        f"At this budget ({m.steps} steps per arm): {verdicts or 'no KD arm has its control'}."
        f"{inherited_line}\n\n"
        f"{figure('pretrain_curves.png', 'Pretraining arms: training loss and held-out masked-LM curves')}\n"
    )


CLAIM_VERDICT = {  # the verdict rules' rule 3 for arms without a test (`ose.verdicts`)
    "helps": verdicts.REDUCED,  # established: better beyond seed noise on one measure, worse on none
    "hurts": verdicts.NOT_REPRODUCED,  # contradicted
    "mixed": verdicts.NOT_REPRODUCED,  # inconclusive
    WITHIN_NOISE: verdicts.NOT_REPRODUCED,  # inconclusive
}


def _kd_claim(p: Result | None) -> dict:
    claim = "Pretraining the extracted ξ by knowledge distillation (vs masked-LM alone)"
    random = (p.verdicts or {}).get("random", {}) if p else {}
    if "kd" not in random:
        return claim_row(claim, "KD pretraining", "not run", "not testable here", "§4, `dvc repro pretrain`")
    here = "; ".join(
        f"{init} init{' (extension)' if init == 'inherited' else ''}, "
        f"{'textbook KD' if form == 'kd' else 'KD as released'}: {v['verdict']}, {_measures(v)}"
        for init, forms in p.verdicts.items()
        for form, v in forms.items()
    )
    here = f"{p.steps} steps, teacher accuracy {p.teacher_heldout_masked_acc:.3f}; {here}"
    return claim_row(
        claim,
        "Bort is pretrained by KD from RoBERTa-large",
        here,
        CLAIM_VERDICT[random["kd"]["verdict"]],
        "§4, `dvc repro pretrain`",
    )


INERT_KD = 1e-6  # a KD/CE gradient-norm ratio under this: the KD term trains nothing


def fairness(m: Result) -> str:
    """What the distillation comparison still does not share besides the claim, read off the metrics
    (`ose.stages.report.fairness`); "no gap known" when nothing."""
    gaps = []
    noise = (m.seed_noise or {}).get("masked_acc")
    if noise is None:
        gaps.append("one seed per arm: no seed noise is measured")
    else:
        single = [a for a, r in m.arms.items() if len(r.get("by_seed", {})) < 2]
        if single:
            gaps.append(f"{', '.join(single)} ran one seed each, judged with the seeded arms' noise")
    if not m.lr_sweep:
        gaps.append("the student's learning rate was not swept at this ξ")
    for init, sweep in (m.lr_sweep or {}).items():
        swept = sorted(row["lr"] for row in sweep["rows"])
        if len(swept) > 1 and sweep["chosen"] in (swept[0], swept[-1]):
            gaps.append(f"{init} init's lr {sweep['chosen']:g} is the edge of the swept grid {swept}")
    prefix = {"random": "", "inherited": "inherited_"}
    shared = [init for init in (m.lr_sweep or {}) if prefix.get(init, "") + "mlm" in m.arms]
    if shared:
        gaps.append(
            f"the lr was swept on the KD arm ({', '.join(shared)} init) and the MLM arm trains with it, "
            "not with its own best"
        )
    inert = [
        arm
        for arm, row in m.arms.items()
        if row.get("loss") == "kd_released" and (row.get("grad_norm_ratio") or 0) < INERT_KD
    ]
    if inert:
        gaps.append(
            f"{', '.join(inert)}: the KD term's gradient is under {INERT_KD:g} of the CE term's, so its "
            "difference from MLM alone is not distillation (its CE term is weighted 0.1)"
        )
    kd = (m.kd_weights or {}).get("kd", {})
    if kd:
        gaps.append(f"textbook KD's α = {kd.get('alpha'):g} and T = {kd.get('temperature'):g} were not swept")
    return ("partly: " + "; ".join(gaps)) if gaps else "no gap known"


def claims(m: Result | None) -> list[dict]:
    """This stage's row of the report's claims table: distillation against masked-LM alone."""
    return [_kd_claim(m)]
