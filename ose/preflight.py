"""What a parameter file cannot show: is the source installed, and does the data fit it?

`check_environment(params)` runs before any work (`python -m ose.params check`, which `make
reproduce` calls, and the first stage, `data`): `source.model` must resolve offline
(`ose.training.source_model.resolve_source`); its positions must hold `data.block_size`,
`finetune.max_len` and `benchmark.seq_lens`; each of our own tasks must split into non-empty train,
dev and test splits holding both classes; and every task of `finetune.tasks` that can be read here
(our own, GLUE and SuperGLUE from a local folder, the user's files; not a hub download) must hold
the fine-tuning samples its settings ask for (`finetune.train_size`, or the task's own entry in
`finetune.task_settings`) for every seed. Kept apart from `ose.params`, which every stage imports,
so that only the stages that run these checks depend on the modules they read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ose.params import Params, ParamsError, _fail

ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert")  # position ids start after the padding index


def check_environment(params: Params, *, readers: Mapping[str, Callable[[], Any]] | None = None) -> None:
    """Check `params` against what is installed; `from_dict` cannot, as it reads no files.

    `source.model` must resolve offline (`ose.training.source_model.resolve_source`); its positions must hold
    `data.block_size`, `finetune.max_len` and `benchmark.seq_lens`; for each of our own tasks the
    split sizes (`ose.data.splits.task_split_sizes`, from the corpus's class counts) must leave every
    split an example of each class (of at least one class, for a multi-class task), and the
    fine-tuning sample (`check_finetune_sizes`) must fit its classes for every seed.
    `readers` (task name → corpus reader) is for tests. Raises `ParamsError`.
    """
    from ose.training.source_model import SourceUnavailable, resolve_source

    try:
        where = resolve_source(params.source.model)
    except SourceUnavailable as exc:
        raise ParamsError(str(exc)) from None
    _check_positions(params, where)
    for name in params.data.tasks:
        _check_task_splits(params, name, readers)
    for task in _local_finetune_tasks(params):
        check_finetune_sizes(params, task)


def _local_finetune_tasks(params: Params) -> list:
    """The tasks of `finetune.tasks` that local files hold, read by the loaders stage `data` uses
    (our own tasks are checked with their splits; a GLUE or SuperGLUE task without a local folder
    comes from the hub, which stage `data` reads)."""
    from ose.data.prepare import load_tasks
    from ose.data.superglue import load_superglue_tasks
    from ose.data.user_tasks import load_user_tasks
    from ose.pipeline.paths import resolve

    data = params.data
    wanted = set(params.finetune.tasks) - set(data.tasks)
    tasks = load_user_tasks(data.files, data.dev_fraction, data.test_fraction, params.seed)
    if data.glue_dir:
        glue = [name for name in data.glue_tasks if name in wanted]
        tasks += load_tasks([], glue, data.glue_dir, data.dev_fraction, data.test_fraction, None, params.seed)
    if data.superglue_dir:
        superglue = [name for name in data.superglue_tasks if name in wanted and name not in data.glue_tasks]
        tasks += load_superglue_tasks(
            superglue, str(resolve(data.superglue_dir)), data.dev_fraction, params.seed
        )
    return [task for task in tasks if task.name in wanted]


def check_finetune_sizes(params: Params, task) -> None:
    """`task`'s fine-tuning samples (its own settings applied) fit its splits, for every seed.

    A balanced train sample of n rows over k classes needs ceil(n / k) rows of each class; the
    message names the key that set n, the split's class counts and the largest n that fits.
    """
    cfg = params.finetune.for_task(task.name)
    keys = [cfg.key_of(task.name, "train_size")]
    keys += [f"{cfg.key_of(task.name, 'dose_sizes')}[{k}]" for k in range(len(cfg.dose_sizes))]
    sizes = [cfg.train_size, *cfg.dose_sizes]
    for size, key in zip(sizes, keys, strict=True):
        _check_train_size(task, cfg.seeds, size, key)


def _check_train_size(task, seeds, size: int | None, key: str) -> None:
    from ose.finetuning.classifier import balanced_sample

    labels = task.train["label"]
    if size is None or size >= len(task.train) or labels.dtype.kind == "f":
        return
    names = getattr(task, "label_names", None) or ()
    counts = {
        (names[c] if c < len(names) else str(c)): int(n)
        for c, n in labels.value_counts().sort_index().items()
    }
    need = -(-size // len(counts))
    if min(counts.values()) < need:
        fits = min(counts.values()) * len(counts)
        where = key if "dose_sizes" in key else f"finetune.task_settings.{task.name}.train_size"
        _fail(
            key,
            f"{size} asks a balanced train sample of {task.name} with {need} rows per class; its train "
            f"split has {counts}: set {where} to at most {fits}, or null (the whole split)",
        )
    for k, seed in enumerate(seeds):
        sample = balanced_sample(task.train, size, seed, key)
        if sample["label"].nunique() < 2:
            _fail(
                key,
                f"{size} draws a train sample of one class for {task.name} with finetune.seeds[{k}] = {seed} "
                f"(from a train split of {len(task.train)}); raise it, or null: the whole train split",
            )


def _check_positions(params: Params, where: str) -> None:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(where)
    except (OSError, ValueError) as exc:
        _fail(
            "source.model", f"cannot read the config of {params.source.model!r}: {str(exc).splitlines()[0]}"
        )
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return
    how = f"max_position_embeddings {limit}"
    if config.model_type in ROBERTA_LIKE:
        offset = (config.pad_token_id or 0) + 1
        limit -= offset
        how += f" minus {offset}, as {config.model_type} position ids start after the padding index"
    lengths = [("data.block_size", params.data.block_size), ("finetune.max_len", params.finetune.max_len)]
    lengths += [(f"benchmark.seq_lens[{k}]", n) for k, n in enumerate(params.benchmark.seq_lens)]
    for path, length in lengths:
        if length > limit:
            _fail(
                path,
                f"must be <= {limit}, the positions source.model {params.source.model!r} can encode "
                f"({how}), got {length}",
            )


def _check_task_splits(params: Params, name: str, readers: Mapping[str, Callable[[], Any]] | None) -> None:
    from ose.data.splits import task_split_sizes
    from ose.data.tasks import OWN_TASK_READERS, build_task, task_spec

    data, spec = params.data, task_spec(name)
    corpus = (OWN_TASK_READERS if readers is None else readers)[name]()
    counts = [corpus.labels.count(label) for label in spec.label_names]
    sizes = task_split_sizes(
        counts,
        dev_fraction=data.dev_fraction,
        test_fraction=data.test_fraction,
        max_examples=data.max_examples,
    )
    binary = len(counts) == 2
    for k, split in enumerate(("train", "dev", "test")):
        per_class = [s[k] for s in sizes]
        if sum(per_class) and (min(per_class) or not binary):
            continue
        if data.max_examples is not None and data.max_examples < len(corpus.labels):
            key, value = "data.max_examples", data.max_examples
        elif split == "train":
            key, value = (
                "data.test_fraction",
                f"{data.test_fraction} (with data.dev_fraction {data.dev_fraction})",
            )
        else:
            key, value = f"data.{split}_fraction", getattr(data, f"{split}_fraction")
        shown = ", ".join(f"{s} {[c[j] for c in sizes]}" for j, s in enumerate(("train", "dev", "test")))
        need = "at least one example of each class" if binary else "at least one example"
        _fail(
            key,
            f"{value} gives {name} splits of {shown} examples per class ({', '.join(spec.label_names)}); "
            f"every split needs {need}",
        )
    if name not in params.finetune.tasks:
        return
    task = build_task(
        name,
        dev_fraction=data.dev_fraction,
        test_fraction=data.test_fraction,
        seed=params.seed,
        max_examples=data.max_examples,
        readers={name: lambda: corpus},
    )
    check_finetune_sizes(params, task)
