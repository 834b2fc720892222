"""Every config class of the package, one per concept; each `params.yaml` group is one of them.

`params.teacher` is a `Teacher`, `params.distill` a `Distill`, ... The code that uses a config
imports it from here (and its own module re-exports it: `ose.training.loop.TrainConfig`), so a setting
is defined once and never copied field by field. Each class validates itself in `__post_init__`
with `ose.pipeline.checks`; `ose.params` reads YAML into them and adds the key path to any error.
This module imports nothing heavy, so a stage's dependencies (dvc.yaml) stay its own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ose.arch import PRESETS, Arch, ArchError, enumerate_space
from ose.pipeline import checks

# Names the validation accepts; the modules that implement them assert they agree (tests).
OWN_TASKS = ("rotten_tomatoes", "imdb", "bbc")
GLUE_TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
SUPERGLUE_TASKS = ("boolq", "cb", "copa", "rte")  # SuperGLUE's RTE is GLUE's RTE: one task, `rte`
BUILTIN_TASKS = tuple(dict.fromkeys(OWN_TASKS + GLUE_TASKS + SUPERGLUE_TASKS))  # = ose.data.tasks.TASK_NAMES
USER_TASK_METRICS = ("accuracy", "f1", "macro_f1", "mcc")  # ose.data.metrics.METRICS for classification
USER_TASK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")  # a folder under data/tasks and a DVC foreach key
CORPUS_NAMES = ("imdb", "rotten_tomatoes", "bbc", "wikipedia", "bible")
THETA_NAME = "name"  # the key of a hyperparameter set θ that names it, not a config field


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The recipe of a training run (params groups `teacher` and `pretrain` extend it).

    checkpoint_every and eval_every: 0 means only at the end. The seed is not part of the recipe:
    `train` takes it, so one recipe serves every seed.
    """

    steps: int
    lr: float
    warmup_steps: int = 0
    batch_size: int = 32
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_every: int = 0
    checkpoint_every: int = 50

    min_steps: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < self.min_steps:
            checks.fail("steps", f"must be an integer >= {self.min_steps}, got {self.steps!r}")
        checks.positive(self, "batch_size")
        checks.non_negative(self, "eval_every", "checkpoint_every")
        checks.in_range("warmup_steps", self.warmup_steps, 0, self.steps)
        checks.in_range("lr", self.lr, 0, 1, low_open=True)
        checks.in_range("weight_decay", self.weight_decay, 0, 1)
        if not self.max_grad_norm > 0:
            checks.fail("max_grad_norm", f"must be positive, got {self.max_grad_norm}")


@dataclass(frozen=True, kw_only=True)
class MaskedLMTraining(TrainConfig):
    """A masked-LM training run: the recipe, and how many held-out blocks to evaluate on."""

    eval_blocks: int = 256
    mask_prob: float = 0.15  # training masking rate; held-out evaluation always masks 15% (BERT)
    bf16: bool = False  # bf16 autocast of the training forward passes (teacher's too); fp32 weights

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.positive(self, "eval_blocks")
        checks.in_range("mask_prob", self.mask_prob, 0, 1, low_open=True, high_open=True)
        if not isinstance(self.bf16, bool):
            checks.fail("bf16", f"must be true or false, got {self.bf16!r}")


@dataclass(frozen=True, kw_only=True)
class Teacher(MaskedLMTraining):
    """Stage `teacher`: masked-LM adaptation of the source (its checkpoint has no MLM head).

    steps: 0 uses the source as it is, for a source whose masked-LM head is trained (RoBERTa-large).
    """

    min_steps: ClassVar[int] = 0


# The arms of stage `pretrain`: (initialisation, loss). Inherited init goes beyond the paper. Loss
# `kd` is textbook KD (`Distill.textbook`), `kd_released` alexa/bort's loss as released
# (`Distill.released`), `mlm` the masked-LM loss alone.
PRETRAIN_ARMS = {
    "kd": ("random", "kd"),  # the paper's recipe as intended: random init, knowledge distillation
    "kd_released": ("random", "kd_released"),  # the paper's recipe as its code computes it
    "mlm": ("random", "mlm"),  # the control for "distillation helps": random init, masked-LM only
    "inherited_kd": ("inherited", "kd"),  # extension: init sliced from the source, then KD
    "inherited_kd_released": ("inherited", "kd_released"),  # the same init, the released loss
    "inherited_mlm": ("inherited", "mlm"),  # their control: the same init, masked-LM only
}
INHERIT_LAYERS = ("bottom", "every_k")


@dataclass(frozen=True)
class Inheritance:
    """How arm `inherited_kd` builds ξ from the source's weights (`pretrain.inherit`; `ose.training.inherit`).

    layers: which D of the source's layers are kept, `bottom` (the first D) or `every_k` (every
    `every`-th, null: ⌊source depth / D⌋); calibration_blocks: training blocks of the corpus on
    which head, neuron and hidden-dimension importance is measured.
    """

    layers: str
    every: int | None
    calibration_blocks: int

    def __post_init__(self) -> None:
        if self.layers not in INHERIT_LAYERS:
            checks.fail("layers", f"must be one of {list(INHERIT_LAYERS)}, got {self.layers!r}")
        if self.every is not None:
            if self.layers != "every_k":
                checks.fail("every", "is only used with layers: every_k; set it to null")
            checks.positive(self, "every")
        checks.positive(self, "calibration_blocks")


@dataclass(frozen=True)
class LrSweep:
    """`pretrain.lr_sweep`: per init, that init's `kd` arm shortened to `steps` (warm-up scaled) under each
    lr of `lrs`; the lr with the lowest held-out masked-LM cross-entropy trains every arm of the init.
    `lrs: []` sweeps nothing: every arm trains with `pretrain.lr`."""

    lrs: list[float]
    steps: int

    def __post_init__(self) -> None:
        for k, lr in enumerate(self.lrs):
            checks.in_range(f"lrs[{k}]", lr, 0, 1, low_open=True)
        if len(set(self.lrs)) != len(self.lrs):
            checks.fail("lrs", f"must be distinct learning rates, got {self.lrs}")
        checks.positive(self, "steps")


@dataclass(frozen=True, kw_only=True)
class Pretrain(MaskedLMTraining):
    """Stage `pretrain`: the extracted ξ trained in several arms on one recipe (`PRETRAIN_ARMS`).

    Every arm trains the same ξ on the same data, steps, batches and masking (same seed); they
    differ in initialisation and loss only. batch_size is the global batch, split over `nproc`
    processes (torchrun; on GPUs one per device). `seeded_arms` run once per seed of `seeds`, paired
    (same seed: same batches and maskings); the other arms run `seeds[0]` only, the seed later stages
    read. `lr` is used only where `lr_sweep` sweeps nothing.
    """

    nproc: int = 1
    arms: list[str] = dataclasses.field(default_factory=lambda: list(PRETRAIN_ARMS))
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1])
    seeded_arms: list[str] = dataclasses.field(default_factory=lambda: ["inherited_kd", "inherited_mlm"])
    lr_sweep: LrSweep = dataclasses.field(default_factory=lambda: LrSweep(lrs=[], steps=1))
    inherit: Inheritance = dataclasses.field(
        default_factory=lambda: Inheritance(layers="bottom", every=None, calibration_blocks=64)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.positive(self, "nproc")
        if self.batch_size % self.nproc:
            checks.fail("batch_size", f"must be divisible by nproc ({self.nproc}), got {self.batch_size}")
        unknown = [a for a in self.arms if a not in PRETRAIN_ARMS]
        if not self.arms or unknown or len(set(self.arms)) != len(self.arms):
            checks.fail("arms", f"must be distinct names among {list(PRETRAIN_ARMS)}, got {self.arms}")
        if "kd" not in self.arms:
            checks.fail("arms", "must include 'kd' (the paper's arm: later stages read models/student)")
        bad = [s for s in self.seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
        if not self.seeds or bad or len(set(self.seeds)) != len(self.seeds):
            checks.fail("seeds", f"must be distinct non-negative integers, at least one, got {self.seeds}")
        outside = [a for a in self.seeded_arms if a not in self.arms]
        if outside or len(set(self.seeded_arms)) != len(self.seeded_arms):
            checks.fail(
                "seeded_arms", f"must be distinct names among arms {self.arms}, got {self.seeded_arms}"
            )
        if self.lr_sweep.steps > self.steps:
            checks.fail(
                "lr_sweep", f"steps must be at most pretrain.steps ({self.steps}), got {self.lr_sweep.steps}"
            )

    def recipe(self) -> MaskedLMTraining:
        """The training recipe every arm shares (what a checkpoint's identity holds)."""
        return MaskedLMTraining(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(MaskedLMTraining)}
        )


@dataclass(frozen=True)
class Source:
    """The source (teacher) network the subarchitecture is extracted from (params group `source`)."""

    name: str
    model: str  # "package:<pypi name>", a hub id, or a local directory
    arch: str  # ξ of the source, e.g. D6-A12-H384-I1536; checked against the loaded model

    def __post_init__(self) -> None:
        try:
            Arch.parse(self.arch)
        except ArchError as exc:
            checks.fail("arch", str(exc))
        if not self.model:
            checks.fail("model", "must name a package ('package:NAME'), a hub id or a directory")


@dataclass(frozen=True)
class Space:
    """A search space Ξ: the grid over ⟨D, A, H, I⟩, skipping points with H % A != 0 (`spaces.NAME`)."""

    depth: list[int]
    heads: list[int]
    hidden: list[int]
    intermediate: list[int]

    def __post_init__(self) -> None:
        for name in ("depth", "heads", "hidden", "intermediate"):
            checks.positive_ints(name, getattr(self, name))
        for k, h in enumerate(self.hidden):
            if not any(h % a == 0 for a in self.heads):
                checks.fail(
                    f"hidden[{k}]",
                    f"hidden size {h} is not divisible by any head count in heads {self.heads} "
                    "(H % A must be 0)",
                )

    def architectures(self) -> list[Arch]:
        return enumerate_space(self.depth, self.heads, self.hidden, self.intermediate)


@dataclass(frozen=True)
class LatencySettings:
    """How a latency is measured: input shape, intra-op threads, untimed and timed calls."""

    batch_size: int
    seq_len: int
    threads: int
    warmup: int
    repeats: int

    def __post_init__(self) -> None:
        checks.positive(self, "batch_size", "threads", "repeats")
        checks.non_negative(self, "warmup")
        checks.in_range("seq_len", self.seq_len, 1, 512)


@dataclass(frozen=True)
class Costs(LatencySettings):
    """Stage `costs`: the latency settings, how many ξ of each space to time, the held-out share."""

    n_sample_default: int
    n_sample_paper: int
    heldout_fraction: float

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.positive(self, "n_sample_default", "n_sample_paper")
        checks.in_range("heldout_fraction", self.heldout_fraction, 0, 1, low_open=True, high_open=True)


@dataclass(frozen=True)
class UserTask:
    """The user's own classification task (`data.files[k]`): a labelled CSV, TSV or JSONL file.

    `text` names one column (single sentences) or two (sentence pairs); `label` the column of class
    labels, strings or integers. `labels` fixes their order (id 0 first; default: sorted, numerically
    when all are integers); a label outside it is an error. The data is either one file (`path`,
    split by `split`, a column of train/dev/test per row, or else seeded and label-stratified with
    `data.dev_fraction`/`data.test_fraction`) or one file per split (`train`, and optionally `dev`
    and `test`; a missing one is carved from train). `metric` is the main metric (f1: of the second
    label; accuracy is always reported too). Read by `ose.data.user_tasks`.
    """

    name: str
    text: list[str]
    label: str
    path: str = ""
    labels: list[str | int] = dataclasses.field(default_factory=list)
    split: str = ""
    train: str = ""
    dev: str = ""
    test: str = ""
    metric: str = "accuracy"

    optional_keys: ClassVar[tuple[str, ...]] = ("path", "labels", "split", "train", "dev", "test", "metric")

    def __post_init__(self) -> None:
        if not USER_TASK_NAME.fullmatch(self.name):
            checks.fail("name", f"must match {USER_TASK_NAME.pattern} (a folder name), got {self.name!r}")
        if self.name in BUILTIN_TASKS:
            checks.fail(
                "name", f"{self.name!r} clashes with a built-in task; built-in: {list(BUILTIN_TASKS)}"
            )
        if len(self.text) not in (1, 2) or len(set(self.text)) != len(self.text) or not all(self.text):
            checks.fail("text", f"must name one text column or two distinct ones (a pair), got {self.text}")
        if not self.label or self.label in self.text:
            checks.fail(
                "label", f"must name a column other than the text columns {self.text}, got {self.label!r}"
            )
        if bool(self.path) == bool(self.train):
            checks.fail(
                "path", "give either path (one file) or train (one file per split), not both or neither"
            )
        for key in ("dev", "test"):
            if getattr(self, key) and not self.train:
                checks.fail(key, "a per-split file needs train too (and no path)")
        if self.split and (not self.path or self.split in (*self.text, self.label)):
            checks.fail(
                "split", f"must name a column of path other than {[*self.text, self.label]}, or be ''"
            )
        names = self.label_names
        if names and (len(names) < 2 or len(set(names)) != len(names)):
            checks.fail("labels", f"must be at least two distinct labels, or [] (sorted), got {self.labels}")
        if self.metric not in USER_TASK_METRICS:
            checks.fail("metric", f"unknown metric {self.metric!r}; allowed: {list(USER_TASK_METRICS)}")
        if self.metric == "f1" and names and len(names) != 2:
            checks.fail("metric", f"f1 is the positive class's F1, for two labels; labels has {len(names)}")

    @property
    def label_names(self) -> tuple[str, ...]:
        """`labels` as strings (a YAML integer 1 and a file's "1" are the same label)."""
        return tuple(str(label) for label in self.labels)


@dataclass(frozen=True)
class Data:
    """Stage `data`: seeded task splits and the pretraining corpus, packed into blocks."""

    tasks: list[str]  # our own tasks, from the packaged corpora
    glue_tasks: list[str]  # GLUE tasks; read from glue_dir when set, else from the hub (cached)
    glue_dir: str
    superglue_tasks: list[str]  # SuperGLUE tasks; from superglue_dir (classic JSONL) or the hub
    superglue_dir: str
    files: list[UserTask]  # the user's own tasks
    dev_fraction: float
    test_fraction: float
    max_examples: int | None  # per task of `tasks`, a stratified subsample; null: all
    corpus_sources: list[str]
    corpus_heldout_fraction: float
    block_size: int

    def __post_init__(self) -> None:
        checks.subset("tasks", self.tasks, OWN_TASKS)
        checks.subset("glue_tasks", self.glue_tasks, GLUE_TASKS)
        checks.subset("superglue_tasks", self.superglue_tasks, SUPERGLUE_TASKS)
        for k, task in enumerate(self.superglue_tasks):
            if task in self.glue_tasks:
                checks.fail(
                    f"superglue_tasks[{k}]",
                    f"{task!r} is also in glue_tasks; both would write data/tasks/{task}",
                )
        names = [f.name for f in self.files]
        for k, name in enumerate(names):
            if name in names[:k]:
                checks.fail(f"files[{k}].name", f"{name!r} names two entries of files")
        if not (self.tasks or self.glue_tasks or self.superglue_tasks or self.files):
            checks.fail("tasks", "name at least one task (here, in glue_tasks, superglue_tasks or files)")
        checks.subset("corpus_sources", self.corpus_sources, CORPUS_NAMES)
        if not self.corpus_sources:
            checks.fail("corpus_sources", f"name at least one of {list(CORPUS_NAMES)}")
        checks.in_range("dev_fraction", self.dev_fraction, 0, 0.5, low_open=True)
        checks.in_range("test_fraction", self.test_fraction, 0, 0.5, low_open=True)
        if self.dev_fraction + self.test_fraction >= 1:
            checks.fail(
                "test_fraction",
                f"dev_fraction + test_fraction is {self.dev_fraction + self.test_fraction}, "
                "which would leave no train split; it must be < 1",
            )
        checks.in_range("corpus_heldout_fraction", self.corpus_heldout_fraction, 0, 0.5, low_open=True)
        checks.in_range("block_size", self.block_size, 8, 512)
        if self.max_examples is not None and self.max_examples < 10:
            checks.fail("max_examples", f"must be null or at least 10, got {self.max_examples}")

    def task_names(self) -> list[str]:
        """Every task this stage writes (a folder `data/tasks/<name>` each), in the order it writes them."""
        return [*self.tasks, *self.glue_tasks, *self.superglue_tasks, *(f.name for f in self.files)]


KD_FORMS = ("kl", "released")  # how the distillation term is computed (`ose.training.distill`)


@dataclass(frozen=True)
class KDWeights:
    """One distillation loss: α·CE + β·T²·(distillation term), the term computed as `form` says.

    form "kl": KL(teacher_T ‖ student_T) summed over the vocabulary, mean over masked tokens (textbook
    KD: β = 1 − α); form "released": the term exactly as alexa/bort's released code computes it
    (`ose.training.distill.released_term`).
    """

    alpha: float = 0.5  # weight of the masked-LM cross-entropy against the true tokens
    beta: float = 0.5  # weight of the distillation term
    temperature: float = 2.0
    form: str = "kl"

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            if not getattr(self, name) >= 0:
                checks.fail(name, f"must be >= 0, got {getattr(self, name)}")
        if self.alpha + self.beta == 0:
            checks.fail("beta", "alpha and beta must not both be 0")
        if not self.temperature > 0:
            checks.fail("temperature", f"must be positive, got {self.temperature}")
        if self.form not in KD_FORMS:
            checks.fail("form", f"must be one of {list(KD_FORMS)}, got {self.form!r}")


@dataclass(frozen=True)
class ReleasedKD:
    """The weights of alexa/bort's released pretraining script (`distill.released`): mlm_weight α,
    teacher_ce_weight β, distillation_temperature T."""

    alpha: float
    beta: float
    temperature: float

    def weights(self) -> KDWeights:
        return KDWeights(self.alpha, self.beta, self.temperature, form="released")


@dataclass(frozen=True)
class Distill:
    """Params group `distill`: textbook KD α·CE + (1 − α)·T²·KL(p_t ‖ p_s) (ê and the `kd` arms) and
    the released script's loss and weights (the `kd_released` arms)."""

    alpha: float
    temperature: float
    released: ReleasedKD

    def __post_init__(self) -> None:
        checks.in_range("alpha", self.alpha, 0, 1)
        self.textbook()  # checks the temperature
        self.released.weights()

    def textbook(self) -> KDWeights:
        return KDWeights(self.alpha, 1.0 - self.alpha, self.temperature, form="kl")


@dataclass(frozen=True)
class SurrogateTheta:
    """One hyperparameter set θ ∈ Θ of the short distillation runs that measure ê (`extract.thetas`)."""

    name: str
    lr: float
    warmup_steps: int


SURROGATE_INITS = ("random", "inherited")  # how each ξ of ê starts: the paper's, or sliced from the teacher
SIZES = ("effective", "net")  # p in W: the encoder's parameters, or all of them
REFERENCES = ("source", "space_max")  # T in W: the source network, or the space's own maximum


@dataclass(frozen=True)
class SurrogateCheck:
    """Does ê after s steps rank architectures as longer training does? (`extract.check`)

    `archs` architectures, stratified over the space by encoder size, each trained for `steps`
    steps (the surrogate's recipe, first θ) with the held-out distillation loss logged at every s of
    `log_steps` in the same run; ê at the smallest s is also measured under every seed of `seeds`.
    `extract.max_steps: auto` takes the smallest s whose Kendall τ_b with the final loss is at
    least `tau` and whose pick loses no W, at most `max_auto_steps` (else the largest s allowed).
    """

    archs: int
    steps: int
    log_steps: list[int]
    seeds: list[int]
    noise_archs: int  # of the `archs` (stratified again) whose ê is run under every seed at every s
    n_boot: int
    tau: float
    max_auto_steps: int
    inits: list[str]  # the inits checked (the same architectures): `extract.init: auto` picks among them

    def __post_init__(self) -> None:
        checks.positive(self, "steps", "n_boot", "max_auto_steps")
        if self.archs < 3:
            checks.fail("archs", f"must be at least 3 (a ranking), got {self.archs}")
        if not 2 <= self.noise_archs <= self.archs:
            checks.fail("noise_archs", f"must be between 2 and archs ({self.archs}), got {self.noise_archs}")
        if (
            not self.inits
            or any(i not in SURROGATE_INITS for i in self.inits)
            or len(set(self.inits)) != len(self.inits)
        ):
            checks.fail("inits", f"must be distinct names among {list(SURROGATE_INITS)}, got {self.inits}")
        checks.positive_ints("log_steps", self.log_steps)
        if self.log_steps != sorted(self.log_steps) or self.log_steps[-1] >= self.steps:
            checks.fail("log_steps", f"must increase and stay below steps ({self.steps}): {self.log_steps}")
        if len(set(self.seeds)) < 2:
            checks.fail("seeds", f"need at least two distinct seeds for the seed noise, got {self.seeds}")
        for k, seed in enumerate(self.seeds):
            checks.seed(f"seeds[{k}]", seed)
        checks.in_range("tau", self.tau, -1, 1)


@dataclass(frozen=True)
class Extract:
    """Stage `extract`: the FPTAS over a space, with its exhaustive reference and the surrogate check."""

    space: str  # a key of `spaces`; its fitted cost model (stage costs) gives i(ξ)
    size: str  # p in W: "effective" (encoder only, the default) or "net" (everything)
    reference: str  # T in W: "source" (outside the space, as in the paper) or "space_max"
    epsilon: int  # interval size ε of the FPTAS, 1 ≤ ε ≤ |Ξ|
    sweep_epsilons: list[int]
    exponents: list[float]  # of the three factors of W; 1, 1, 1 is the paper's W
    max_steps: int | str  # s: distillation steps per candidate, or "auto" (from the surrogate check)
    batch_size: int
    seq_len: int
    heldout_batches: int
    heldout_batch_size: int  # of the held-out batches (one fixed masking; its size changes no score)
    min_heldout_tokens: int  # ê is scored on at least this many masked tokens, or the stage stops
    thetas: list[SurrogateTheta]
    nproc: int  # worker processes (torchrun, gloo) for the candidate evaluations
    threads_per_process: int
    init: str  # how each ξ starts before its s steps: random, inherited (an extension) or auto
    check: SurrogateCheck

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            checks.fail("size", f"must be one of {list(SIZES)}, got {self.size!r}")
        if self.reference not in REFERENCES:
            checks.fail("reference", f"must be one of {list(REFERENCES)}, got {self.reference!r}")
        if isinstance(self.max_steps, str):
            if self.max_steps != "auto":
                checks.fail("max_steps", f"must be a positive integer or 'auto', got {self.max_steps!r}")
        else:
            checks.positive(self, "max_steps")
        checks.positive(
            self, "batch_size", "heldout_batches", "heldout_batch_size", "min_heldout_tokens", "nproc",
            "threads_per_process",
        )  # fmt: skip
        if self.init not in (*SURROGATE_INITS, "auto"):
            checks.fail("init", f"must be one of {[*SURROGATE_INITS, 'auto']}, got {self.init!r}")
        if self.init == "auto" and len(self.check.inits) < 2:
            checks.fail(
                "init", f"auto picks among check.inits, which lists {self.check.inits}; name one init"
            )
        if self.init != "auto" and self.init not in self.check.inits:
            checks.fail(
                "init", f"{self.init!r} must be among check.inits {self.check.inits} (its ê is checked)"
            )
        if self.epsilon < 1:
            checks.fail("epsilon", f"must be an integer >= 1 (and <= the space size), got {self.epsilon}")
        for k, eps in enumerate(self.sweep_epsilons):
            if eps < 1:
                checks.fail(f"sweep_epsilons[{k}]", f"must be >= 1, got {eps}")
        if len(self.exponents) != 3 or any(x < 0 for x in self.exponents):
            checks.fail("exponents", f"must be three non-negative numbers, got {self.exponents}")
        checks.in_range("seq_len", self.seq_len, 8, 512)
        checks.thetas("thetas", self.thetas)
        shortest = self.max_steps if isinstance(self.max_steps, int) else self.check.log_steps[0]
        for k, theta in enumerate(self.thetas):
            checks.in_range(f"thetas[{k}].warmup_steps", theta.warmup_steps, 0, shortest)


@dataclass(frozen=True)
class FineTuneConfig:
    """Hyperparameters of one fine-tuning run (a θ of Agora overrides some of them).

    patience: evaluations without improvement of the dev main metric before stopping; 0 never stops
    early. eval_every: steps between dev evaluations; 0 evaluates at the end of every epoch.
    pooling: "cls" (the first token's state, Bort's head) or "mean" (the mean of the last hidden
    states over the non-padding tokens, as sentence-transformers' all-MiniLM-L6-v2 was trained).
    A fit trains on the whole frame it is given: sampling the train split is the caller's
    (`ose.finetuning.classifier.balanced_sample`, once per seed), so Agora's grown frames keep
    every point it added.
    """

    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    dropout: float = 0.1
    max_len: int = 128
    patience: int = 0
    eval_every: int = 0
    eval_batch_size: int = 64
    bf16: bool = False  # bf16 autocast of the classifier's forward passes (fp32 weights and AdamW)
    pooling: str = "cls"  # the sentence vector: the first token's state, or the mean over real tokens
    max_steps: int | None = None  # a cap on the steps (None: `epochs` full epochs)

    POOLINGS: ClassVar[tuple[str, ...]] = ("cls", "mean")

    def __post_init__(self) -> None:
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ValueError(f"max_steps must be null or a positive integer, got {self.max_steps!r}")
        if not isinstance(self.bf16, bool):
            raise ValueError(f"bf16 must be true or false, got {self.bf16!r}")
        if self.pooling not in self.POOLINGS:
            raise ValueError(f"pooling must be one of {list(self.POOLINGS)}, got {self.pooling!r}")
        positive = ("epochs", "batch_size", "max_len", "eval_batch_size")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("patience", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.warmup_fraction <= 1:
            raise ValueError(f"warmup_fraction must be in [0, 1], got {self.warmup_fraction!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay!r}")
        if self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive, got {self.max_grad_norm!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def with_theta(self, theta: Mapping[str, Any]) -> FineTuneConfig:
        """This config with the fields a hyperparameter set θ names replaced (its "name" is ignored)."""
        fields = {f.name for f in dataclasses.fields(self)}
        overrides = {k: v for k, v in theta.items() if k != THETA_NAME}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(
                f"θ {theta.get(THETA_NAME, '')!r} sets unknown fields {unknown}; allowed: {sorted(fields)}"
            )
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class FineTuneTheta:
    """One hyperparameter set θ ∈ Θ of Agora's fine-tuning (`finetune.thetas`): it overrides these."""

    name: str
    lr: float
    epochs: int

    def __post_init__(self) -> None:
        checks.positive(self, "epochs")


@dataclass(frozen=True)
class GeneratorConfig:
    """Agora's generator g (`finetune.generator`): nearest-neighbour token substitution."""

    k: int  # neighbours to choose from
    fraction: float  # of the replaceable tokens of a text
    n_new: int  # new points per dev mistake

    def __post_init__(self) -> None:
        checks.positive(self, "k", "n_new")
        checks.in_range("fraction", self.fraction, 0, 1, low_open=True)


class _Unset:
    """The default of a `TaskSettings` key the task leaves to its `finetune` group."""

    def __repr__(self) -> str:
        return "unset"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class TaskSettings:
    """`finetune.task_settings.<task>`: the keys of `finetune` one task sets for itself; a key left
    out keeps the group's value. DVC tracks each task's entry as its own parameter
    (`finetune.task_settings.${item}`), so editing one task's entry re-runs that task's stage only."""

    KEYS: ClassVar[tuple[str, ...]] = ("students", "seeds", "train_size", "dev_size", "max_len", "dose_sizes")
    optional_keys: ClassVar[tuple[str, ...]] = KEYS  # `ose.params`: every key may be left out

    students: list[str] = UNSET
    seeds: list[int] = UNSET
    train_size: int | None = UNSET
    dev_size: int | None = UNSET
    max_len: int = UNSET
    dose_sizes: list[int] = UNSET

    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.KEYS if getattr(self, k) is not UNSET}


@dataclass(frozen=True)
class FineTune:
    """Stage `finetune` (one DVC stage per task): per seed, the labeller S (the source fine-tuned on a
    scarce, balanced train sample) and, per student, three paired arms: plain (Agora's round 1),
    Agora, and the control (as many S-labelled points per round as Agora, around dev points drawn at
    random: `control_anchor`), at `train_size` and at every size of `dose_sizes` (the dose-response)."""

    # pretrain's arms, by the student they save: kd models/student (the paper's recipe), mlm
    # models/student_mlm_only, inherited_kd models/student_inherited (an extension)
    STUDENTS: ClassVar[tuple[str, ...]] = ("kd", "mlm", "inherited_kd")

    tasks: list[str]
    students: list[str]
    # a task's own values of some keys (`TaskSettings.KEYS`); every task of `tasks` has an entry,
    # `{}` when it changes nothing: DVC tracks each entry, and a missing one stops `dvc repro`
    task_settings: dict[str, TaskSettings]
    seeds: list[int]
    train_size: int | None  # a balanced seeded sample of each task's train split; null: all
    dev_size: int | None  # a stratified seeded sample of the dev split; null: all
    max_len: int
    batch_size: int
    warmup_fraction: float
    dropout: float
    source_lr: float
    source_epochs: int
    source_max_steps: int | None  # a cap on S's steps (null: source_epochs full epochs at every size)
    eval_every: int  # student dev evaluations every this many steps (0: each epoch); best state kept
    thetas: list[FineTuneTheta]
    tie_tolerance: float  # dev scores within this of the worst θ count as tied with it
    replay: int
    generator: GeneratorConfig
    bf16: bool = False  # bf16 autocast of every fit and prediction (S's and the students')
    pooling: str = "cls"  # the classifiers' sentence vector: first token, or the mean over tokens
    control_anchor: str = "random_dev"  # the control's anchors: random dev points, or random train rows
    dose_sizes: list[int] = dataclasses.field(default_factory=list)  # more train sizes: the dose-response
    nproc: int = 1  # worker processes over the seeds, one intra-op thread each (1: this process)

    CONTROL_ANCHORS: ClassVar[tuple[str, ...]] = ("random_dev", "random_train")
    POOLINGS: ClassVar[tuple[str, ...]] = ("cls", "mean")

    def __post_init__(self) -> None:
        if self.pooling not in self.POOLINGS:
            checks.fail("pooling", f"must be one of {list(self.POOLINGS)}, got {self.pooling!r}")
        if self.control_anchor not in self.CONTROL_ANCHORS:
            checks.fail(
                "control_anchor", f"must be one of {list(self.CONTROL_ANCHORS)}, got {self.control_anchor!r}"
            )
        for k, size in enumerate(self.dose_sizes):
            if isinstance(size, bool) or not isinstance(size, int) or size < 10:
                checks.fail(
                    f"dose_sizes[{k}]", f"must be an integer >= 10 (a train sample size), got {size!r}"
                )
        if not self.tasks:
            checks.fail("tasks", "name at least one task of data.tasks or data.glue_tasks")
        if not self.students:
            checks.fail("students", f"name at least one of {list(self.STUDENTS)}")
        checks.subset("students", self.students, self.STUDENTS)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            checks.fail("seeds", f"must be distinct seeds, at least one, got {self.seeds}")
        for k, seed in enumerate(self.seeds):
            checks.seed(f"seeds[{k}]", seed)
        for name in ("train_size", "dev_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 10):
                checks.fail(name, f"must be null (the whole split) or an integer >= 10, got {value!r}")
        checks.in_range("max_len", self.max_len, 8, 512)
        checks.positive(self, "batch_size", "source_epochs", "nproc")
        checks.non_negative(self, "eval_every", "replay")
        if self.source_max_steps is not None:
            checks.positive(self, "source_max_steps")
        checks.in_range("warmup_fraction", self.warmup_fraction, 0, 1)
        checks.in_range("dropout", self.dropout, 0, 1, high_open=True)
        checks.in_range("source_lr", self.source_lr, 0, 1, low_open=True)
        checks.in_range("tie_tolerance", self.tie_tolerance, 0, 1)
        checks.thetas("thetas", self.thetas)
        if not isinstance(self.bf16, bool):
            checks.fail("bf16", f"must be true or false, got {self.bf16!r}")
        missing = [task for task in self.tasks if task not in self.task_settings]
        if missing:
            checks.fail(
                f"task_settings.{missing[0]}",
                "missing: every task of finetune.tasks needs an entry, `{}` when it changes nothing "
                "(DVC tracks each task's entry, so editing one re-runs that task's stage only)",
            )
        for task, settings in self.task_settings.items():  # an entry for a task not run is unused
            if settings.overrides():  # the group's values with the task's applied pass the same checks
                try:
                    dataclasses.replace(
                        self, tasks=[task], task_settings={task: TaskSettings()}, **settings.overrides()
                    )
                except checks.ConfigError as exc:
                    checks.fail(f"task_settings.{task}.{exc.field}", exc.message)

    def train_sizes(self) -> list[int | None]:
        """The train sizes the stage runs: `train_size` (the main table's) first, then `dose_sizes`."""
        return [self.train_size, *sorted(set(self.dose_sizes) - {self.train_size})]

    def for_task(self, task: str) -> FineTune:
        """The settings `task` is fine-tuned with: the group's, with the task's own entry applied."""
        return dataclasses.replace(self, **self.task_settings.get(task, TaskSettings()).overrides())

    def key_of(self, task: str, key: str) -> str:
        """Where `task`'s value of `key` is set in params.yaml (for messages)."""
        overrides = self.task_settings.get(task, TaskSettings()).overrides()
        return f"finetune.task_settings.{task}.{key}" if key in overrides else f"finetune.{key}"

    def source_config(self) -> FineTuneConfig:
        """The labeller S: the source fine-tuned with one hyperparameter set."""
        return FineTuneConfig(
            epochs=self.source_epochs, lr=self.source_lr, max_steps=self.source_max_steps, **self._shared()
        )

    def student_config(self) -> FineTuneConfig:
        """The student's fits, before a θ of Θ overrides its learning rate and epochs."""
        return FineTuneConfig(eval_every=self.eval_every, **self._shared())

    def _shared(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "warmup_fraction": self.warmup_fraction,
            "dropout": self.dropout,
            "max_len": self.max_len,
            "bf16": self.bf16,
            "pooling": self.pooling,
        }


@dataclass(frozen=True)
class Benchmark:
    """Stage `benchmark`: CPU latency of the presets, the source and the student, timed in interleaved
    rounds (`ose.speed.harness.benchmark_models`), speed-ups with bootstrap intervals over the rounds."""

    # What the stage times besides the presets (the ONNX sessions only with `onnx`).
    STAGE_MODELS: ClassVar[tuple[str, ...]] = ("source", "student", "student-onnx", "student-onnx-int8")

    presets: list[str]  # random-weight networks of these shapes (ose.arch.PRESETS)
    batch_sizes: list[int]
    seq_lens: list[int]
    grid_models: list[str]  # timed at every (batch, seq) cell; the others at the smallest one only
    threads: int
    warmup: int  # untimed calls per model and cell before the rounds
    rounds: int  # interleaved rounds; the speed-up intervals resample them
    repeats: int  # fewest calls per model, cell and round (the round keeps their median)
    min_round_ms: float  # a fast model's block gets more calls, to last about this long
    onnx: bool  # also the student exported to ONNX Runtime, plain and int8

    def __post_init__(self) -> None:
        checks.subset("presets", self.presets, tuple(PRESETS))
        checks.positive_ints("batch_sizes", self.batch_sizes)
        checks.positive_ints("seq_lens", self.seq_lens)
        for k, seq in enumerate(self.seq_lens):
            checks.in_range(f"seq_lens[{k}]", seq, 1, 512)
        checks.subset("grid_models", self.grid_models, (*self.presets, *self.STAGE_MODELS))
        checks.positive(self, "threads", "repeats")
        checks.non_negative(self, "warmup")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 2:
            checks.fail("rounds", f"must be an integer >= 2 (an interval needs two), got {self.rounds!r}")
        checks.in_range("min_round_ms", self.min_round_ms, 0, 60_000)
