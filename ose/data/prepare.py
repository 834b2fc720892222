"""The data layer in one import (docs/science.md, "Where it lives", names it `ose.data.prepare`).

It lives in modules named after what they hold:
`ose.data.corpus` (pretraining text from installed packages, exclusion of eval text, block packing),
`ose.data.tasks` (task specs, task data, saving/loading), `ose.data.splits` (seeded splits),
`ose.data.metrics` (metrics and `score`) and
`ose.data.glue` (GLUE/SuperGLUE from a local TSV folder or through `datasets`).
"""

import torch

from ose.configs import Data  # noqa: F401 (re-exported)
from ose.data.corpus import (
    CORPUS_NAMES,
    Corpus,
    PretrainingCorpus,
    Provenance,
    build_corpus,
    clean_text,
    load_blocks,
    match_key,
    pack_blocks,
    read_corpus,
    save_blocks,
)
from ose.data.glue import GLUE_TASKS, HubDatasetUnavailable, load_hub_task, read_glue_task
from ose.data.metrics import score
from ose.data.splits import split_off_dev
from ose.data.tasks import (
    OWN_TASKS,
    TASK_NAMES,
    TaskData,
    build_task,
    eval_texts,
    load_task,
    main_metric,
    save_task,
)
from ose.pipeline.fingerprint import tokenizer_digest

__all__ = [
    "CORPUS_NAMES",
    "GLUE_TASKS",
    "OWN_TASKS",
    "TASK_NAMES",
    "Corpus",
    "HubDatasetUnavailable",
    "PretrainingCorpus",
    "Provenance",
    "TaskData",
    "build_corpus",
    "build_task",
    "clean_text",
    "eval_texts",
    "load_blocks",
    "load_hub_task",
    "load_task",
    "main_metric",
    "match_key",
    "pack_blocks",
    "read_corpus",
    "read_glue_task",
    "save_blocks",
    "save_task",
    "score",
    "split_off_dev",
]


# ---------------------------------------------------------------------------------------------
# Stage `data`: every task split and the pretraining corpus, written under data/


def load_tasks(
    tasks: list[str],
    glue_tasks: list[str],
    glue_dir: str,
    dev_fraction: float,
    test_fraction: float,
    max_examples: int | None,
    seed: int,
) -> list[TaskData]:
    """Our own tasks (seeded splits of the packaged corpora), then GLUE tasks.

    GLUE comes from `glue_dir` (classic TSV layout) when it is set, else through `datasets`
    (`nyu-mll/glue`), which offline works only for a cached copy and otherwise fails at once.
    """
    out = [
        build_task(
            name, dev_fraction=dev_fraction, test_fraction=test_fraction, seed=seed, max_examples=max_examples
        )
        for name in tasks
    ]
    for name in glue_tasks:
        if glue_dir:
            out.append(read_glue_task(glue_dir, name, dev_fraction=dev_fraction, seed=seed))
        else:
            out.append(load_hub_task("nyu-mll/glue", name, dev_fraction=dev_fraction, seed=seed))
    return out


def prepare_corpus(
    tasks: list[TaskData],
    sources: list[str],
    heldout_fraction: float,
    block_size: int,
    tokenizer,
    seed: int,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Packed train and held-out blocks of the pretraining corpus, with every task's dev and test
    text excluded; the train blocks are shuffled with `seed` (documents arrive source by source)."""
    excluded = set().union(*(eval_texts(task) for task in tasks)) if tasks else set()
    corpus = build_corpus(sources, excluded, heldout_fraction, seed)
    train = pack_blocks(corpus.train, tokenizer, block_size, progress=progress)
    heldout = pack_blocks(corpus.heldout, tokenizer, block_size, progress=progress)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    # Only what shaped the blocks: which tasks' text was excluded is the data stage's record, not
    # the corpus's (adding a task whose text is in no source leaves the corpus, and every stage
    # that reads it, unchanged); the tokenizer by content, not by the path it was loaded from.
    provenance = {**corpus.provenance, "block_size": block_size, "tokenizer": tokenizer_digest(tokenizer)}
    return {"train": train[order], "heldout": heldout}, provenance
