"""Stage `data`: seeded task splits, and the pretraining corpus packed into blocks.

Tasks, in this order: our own (`data.tasks`), GLUE (`data.glue_tasks`), SuperGLUE
(`data.superglue_tasks`, `ose.data.superglue`) and the user's files (`data.files`, `ose.data.user_tasks`);
each is written to `<tasks_dir>/<name>`, where stage finetune reads it (`ose.data.tasks.load_task`).

Every dev and test text of every task is kept out of the corpus, which is tokenized with the
source's tokenizer (`ose.data.prepare`). `run` expects params checked against what is installed
(`ose.params.load(..., environment=True)`).
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import AutoTokenizer

from ose.data import prepare
from ose.data.superglue import load_superglue_tasks
from ose.data.tasks import TaskData
from ose.data.user_tasks import load_user_tasks
from ose.params import Params
from ose.pipeline.dvcfile import paths_class
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult, markdown_table, write_table
from ose.training.source_model import resolve_source

SOURCE_COLUMNS = (
    "name",
    "package",
    "version",
    "documents",
    "excluded_as_eval_text",
    "duplicates_of_earlier_sources",
    "train_documents",
    "heldout_documents",
    "licence",
)


class Paths(paths_class("data")):
    """The notebook's path parameters; defaults: what dvc.yaml passes (`ose.pipeline.dvcfile`)."""


@dataclass(frozen=True)
class Result(StageResult):
    profile: str
    tasks: dict  # task → {metric, labels, train, dev, test}
    corpus_train_blocks: int
    corpus_heldout_blocks: int
    corpus_train_tokens: int
    block_size: int
    excluded_eval_documents: int


def task_rows(tasks: list[TaskData]) -> list[dict]:
    """One row per task: its main metric, number of labels and split sizes."""
    return [
        {
            "task": t.name,
            "metric": t.main_metric,
            "labels": t.num_labels,
            **{split: len(frame) for split, frame in t.splits().items()},
        }
        for t in tasks
    ]


def source_rows(provenance: dict) -> list[dict]:
    """One row per corpus source: where it comes from and how many documents went where."""
    return [{key: s[key] for key in SOURCE_COLUMNS} for s in provenance["sources"]]


def task_metrics(rows: list[dict]) -> dict:
    """task → its row without the task name."""
    return {row["task"]: {k: v for k, v in row.items() if k != "task"} for row in rows}


def run(params: Params, paths: Paths | None = None, progress: bool = True) -> tuple[Result, dict]:
    """Write every task split, the corpus blocks, both tables and the metrics.

    Returns the metrics and what the notebook shows: the two tables as Markdown.
    """
    paths = paths or Paths()
    cfg, tables = params.data, resolve(paths.tables_dir)
    tokenizer = AutoTokenizer.from_pretrained(resolve_source(params.source.model))
    print(
        f"profile {params.profile!r}; tokenizer {type(tokenizer).__name__}, "
        f"vocabulary {tokenizer.vocab_size:,}"
    )

    # the user's files first: a wrong column or label stops the stage before the long reads
    user_tasks = load_user_tasks(cfg.files, cfg.dev_fraction, cfg.test_fraction, params.seed)
    tasks = prepare.load_tasks(
        cfg.tasks,
        cfg.glue_tasks,
        cfg.glue_dir,
        cfg.dev_fraction,
        cfg.test_fraction,
        cfg.max_examples,
        params.seed,
    )
    tasks += load_superglue_tasks(
        cfg.superglue_tasks,
        str(resolve(cfg.superglue_dir)) if cfg.superglue_dir else "",
        cfg.dev_fraction,
        params.seed,
    )
    tasks += user_tasks
    for task in tasks:
        prepare.save_task(task, resolve(paths.tasks_dir) / task.name)
    splits = task_rows(tasks)
    write_table(
        tables / "data_tasks", splits, title=f"Task splits (seed {params.seed}, profile {params.profile})"
    )

    blocks, provenance = prepare.prepare_corpus(
        tasks,
        cfg.corpus_sources,
        cfg.corpus_heldout_fraction,
        cfg.block_size,
        tokenizer,
        params.seed,
        progress,
    )
    prepare.save_blocks(resolve(paths.corpus_dir), blocks, provenance)
    sources = source_rows(provenance)
    write_table(
        tables / "data_corpus", sources, title=f"Pretraining corpus by source (profile {params.profile})"
    )
    print({split: tuple(b.shape) for split, b in blocks.items()}, "blocks")

    result = Result(
        profile=params.profile,
        tasks=task_metrics(splits),
        corpus_train_blocks=len(blocks["train"]),
        corpus_heldout_blocks=len(blocks["heldout"]),
        corpus_train_tokens=blocks["train"].numel(),
        block_size=cfg.block_size,
        excluded_eval_documents=sum(s["excluded_as_eval_text"] for s in provenance["sources"]),
    )
    result.write(resolve(paths.metrics_file))
    return result, {"data_tasks": markdown_table(splits), "data_corpus": markdown_table(sources)}
