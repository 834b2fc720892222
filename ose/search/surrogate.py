"""The table of surrogate errors ê(ξ, θ) over a space, in one process or several (torchrun, gloo).

Each (ξ, θ) is one short distillation run (`ose.training.distill.surrogate_error`). Work is dealt out round
robin: rank r of w takes pairs r, r+w, r+2w, … Each rank saves its rows to its own shard after every
pair, so an interrupted run resumes where it stopped (rows of other settings are ignored), and
at the end rank 0 gathers every rank's rows with `gather_object` and writes the merged table.

    python -m ose.search.surrogate JOB.json                                     # one process
    torchrun --standalone --nproc_per_node=2 -m ose.search.surrogate JOB.json   # two (gloo on CPU)
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import AutoModelForMaskedLM

from ose import arch as arch_module
from ose.arch import Arch, Embedding
from ose.pipeline import row_cache
from ose.pipeline.atomic import save_torch_atomic, write_text_atomic
from ose.pipeline.distributed import process_group, torchrun, worker_device
from ose.pipeline.fingerprint import source_digest
from ose.pipeline.loading import quietly
from ose.pipeline.progress import bar as progress_bar
from ose.training import distill, inherit, loop, mlm
from ose.training.distill import FixedSample, KDWeights, surrogate_error
from ose.training.mlm import IGNORE

COLUMNS = ("arch", "theta", "error", "train_loss", "seconds", "losses", "rank", "settings")


@dataclass(frozen=True)
class SurrogateJob:
    """Everything a worker needs, as plain values (written to JSON for torchrun workers)."""

    archs: list[str]
    thetas: list[dict]  # each {"name", "lr", "warmup_steps"}, optionally its own "steps" and "seed"
    sample_path: str  # torch.save of {"train": FixedSample dict, "heldout": FixedSample dict}
    embedding: dict
    steps: int
    weights: dict
    seed: int
    shard_dir: str
    threads: int = 1
    sample_key: str = ""  # identifies the sample's content (masked tokens, teacher); "" hashes the file
    log_steps: list[int] = field(default_factory=list)  # reference runs: held-out loss at these steps too
    desc: str = "surrogate error"  # the progress bar's label
    # "random": each ξ starts from a seeded random init (the paper); "inherited" (an extension): from
    # the teacher sliced by `ose.training.inherit` with calibration ids from the sample file
    init: str = "random"
    inherit: dict | None = None  # for "inherited": {"teacher_dir", "layers", "every"}

    def settings_key(self) -> str:
        """Identifies the settings a row was computed with (not which ξ are asked for, nor where)."""
        ignored = ("archs", "shard_dir", "threads", "sample_path", "sample_key", "desc", "inherit")
        settings = {k: v for k, v in asdict(self).items() if k not in ignored}
        if self.init == "inherited":  # the teacher and calibration ids are in the sample key
            settings["inherit"] = {k: v for k, v in (self.inherit or {}).items() if k != "teacher_dir"}
        settings["sample"] = self.sample_key or _file_digest(self.sample_path)
        settings["code"] = source_digest(distill, loop, mlm, arch_module, inherit)  # what computes ê
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]

    def pairs(self) -> list[tuple[str, dict]]:
        return [(a, t) for a in self.archs for t in self.thetas]


@dataclass
class Sample:
    """What ê trains and is scored on: B (one batch per step), the held-out batches (both with the
    teacher's logits), the calibration ids of the `inherited` init (None for random), and `key`, a
    digest of their content and of the teacher's weights (the cache key of every row computed on it)."""

    train: FixedSample
    heldout: FixedSample
    calibration: torch.Tensor | None
    key: str

    def head(self, steps: int) -> Sample:
        """The same sample with B cut to its first `steps` batches (what an s-step ê trains on)."""
        train = self.train.head(steps)
        return Sample(train, self.heldout, self.calibration, f"{self.key}:head{steps}")

    def save(self, path: str | Path) -> None:
        data = {"train": self.train.to_dict(), "heldout": self.heldout.to_dict()}
        if self.calibration is not None:
            data["calibration"] = self.calibration
        save_torch_atomic(data, path)

    def masked_heldout_tokens(self) -> int:
        return int((self.heldout.labels != IGNORE).sum())


def evaluated(job: SurrogateJob, sample: Sample, nproc: int = 1, progress: bool = True) -> list[dict]:
    """The job's table (ê of every (ξ, θ)) on `sample`: from its cache, or computed with `nproc`
    workers; the sample goes to a temporary file only when a row is still to do."""
    job = replace(job, sample_key=sample.key)
    table = cached_rows(job)
    if table is None:
        with tempfile.TemporaryDirectory(prefix="ose-surrogate-") as tmp:
            path = Path(tmp) / "sample.pt"
            sample.save(path)
            table = evaluate_table(replace(job, sample_path=str(path)), nproc=nproc, progress=progress)
    return table


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def read_shards(
    shard_dir: str | Path, settings: str, pattern: str = "rank*.csv"
) -> dict[tuple[str, str], dict]:
    """Rows already computed with these settings, by (arch, theta name)."""
    rows = {}
    for shard in sorted(Path(shard_dir).glob(pattern)):
        for key, row in row_cache.read_rows(shard, ("arch", "theta"), {"settings": settings}).items():
            rows[key] = {**row, **{k: float(row[k]) for k in ("error", "train_loss", "seconds")}}
    return rows


def _write_rows(path: Path, rows: list[dict]) -> None:
    """Rewrite a shard or the table atomically (floats as `repr`, so they read back exactly)."""
    row_cache.write_rows(path, COLUMNS, rows)


def run_worker(job: SurrogateJob, rank: int = 0, world: int = 1, progress: bool = True) -> list[dict]:
    """Compute this rank's share of the table, resuming from the shards; return its rows."""
    torch.set_num_threads(job.threads)
    settings = job.settings_key()
    done = read_shards(job.shard_dir, settings)
    mine = job.pairs()[rank::world]
    rows = [done[(a, t["name"])] for a, t in mine if (a, t["name"]) in done]
    todo = [(a, t) for a, t in mine if (a, t["name"]) not in done]
    shard = Path(job.shard_dir) / f"rank{rank}.csv"
    keep = list(read_shards(job.shard_dir, settings, shard.name).values())  # rewritten after each pair
    if todo:
        sample = torch.load(job.sample_path, weights_only=False)
        device = worker_device()  # this worker's GPU when there are GPUs
        train = FixedSample.from_dict(sample["train"]).to(device)
        heldout = FixedSample.from_dict(sample["heldout"]).to(device)
        embedding, weights = Embedding(**job.embedding), KDWeights(**job.weights)
        initial = initial_models(job, sample)
        for arch, theta in progress_bar(
            todo, desc=f"{job.desc} (rank {rank})", unit="trainings", disable=not progress or rank
        ):
            result = surrogate_error(
                Arch.parse(arch),
                embedding,
                train,
                heldout,
                int(theta.get("steps", job.steps)),  # a θ may set its own s and seed (seed-noise runs)
                theta["lr"],
                theta["warmup_steps"],
                weights,
                int(theta.get("seed", job.seed)),
                job.log_steps,
                initial(Arch.parse(arch)),
            )
            losses = json.dumps({str(k): v for k, v in result.pop("losses", {}).items()})
            row = {
                "arch": arch,
                "theta": theta["name"],
                **result,
                "losses": losses,
                "rank": str(rank),
                "settings": settings,
            }
            rows.append(row)
            keep.append(row)
            _write_rows(shard, keep)
    return rows


def initial_models(job: SurrogateJob, sample: dict):
    """ξ → the model ê starts from: None (a seeded random init) or ξ sliced from the teacher."""
    if job.init == "random":
        return lambda arch: None
    if job.init != "inherited":
        raise ValueError(f"init must be 'random' or 'inherited', got {job.init!r}")
    settings = job.inherit or {}
    with quietly():
        teacher = AutoModelForMaskedLM.from_pretrained(settings["teacher_dir"]).eval()
    return inherit.Slicer(
        teacher, sample["calibration"], settings.get("layers", "bottom"), settings.get("every")
    )


def logged_losses(row: dict) -> dict[int, float]:
    """The held-out losses a reference run logged, {step: loss} ({} for a plain ê row)."""
    return {int(k): float(v) for k, v in json.loads(row.get("losses") or "{}").items()}


def cached_rows(job: SurrogateJob) -> list[dict] | None:
    """The whole table from the shards when every (ξ, θ) of `job` is there, else None."""
    done = read_shards(job.shard_dir, job.settings_key())
    if any((a, t["name"]) not in done for a, t in job.pairs()):
        return None
    return merge(job, list(done.values()))


def merge(job: SurrogateJob, rows: list[dict]) -> list[dict]:
    """The table in the job's (ξ, θ) order; fails if a pair is missing."""
    by_key = {(r["arch"], r["theta"]): r for r in rows}
    missing = [(a, t["name"]) for a, t in job.pairs() if (a, t["name"]) not in by_key]
    if missing:
        raise RuntimeError(f"{len(missing)} (arch, theta) pairs were not evaluated, e.g. {missing[:3]}")
    return [by_key[(a, t["name"])] for a, t in job.pairs()]


def worker_seconds(table: list[dict]) -> float:
    """Training time of the busiest worker: the table's wall time, less start-up.

    Computed from the rows (which the cache keeps), not from a clock: a re-run that finds every
    row cached reports the time the table took to compute, and writes the same metrics.
    """
    per_rank: dict[str, float] = {}
    for row in table:
        per_rank[row["rank"]] = per_rank.get(row["rank"], 0.0) + row["seconds"]
    return max(per_rank.values(), default=0.0)


def write_job(job: SurrogateJob, path: str | Path) -> Path:
    write_text_atomic(path, json.dumps(asdict(job), indent=2) + "\n")
    return Path(path)


def read_job(path: str | Path) -> SurrogateJob:
    return SurrogateJob(**json.loads(Path(path).read_text()))


def evaluate_table(job: SurrogateJob, nproc: int = 1, progress: bool = True) -> list[dict]:
    """ê for every (ξ, θ) of the job: in this process, or with `nproc` torchrun workers (gloo)."""
    if nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc}")
    Path(job.shard_dir).mkdir(parents=True, exist_ok=True)
    if nproc == 1:
        return merge(job, run_worker(job, progress=progress))
    torchrun("ose.search.surrogate", write_job(job, Path(job.shard_dir) / "job.json"), nproc, job.threads)
    table = Path(job.shard_dir) / "table.csv"
    with table.open(newline="") as f:
        rows = [
            {**r, **{k: float(r[k]) for k in ("error", "train_loss", "seconds")}} for r in csv.DictReader(f)
        ]
    return merge(job, rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ose.search.surrogate JOB.json (or under torchrun)", file=sys.stderr)
        return 2
    job = read_job(argv[0])
    with process_group() as (rank, world):
        rows = run_worker(job, rank, world)
        if world > 1:
            gathered = [None] * world if rank == 0 else None
            dist.gather_object(rows, gathered, dst=0)
            rows = [row for part in gathered for row in part] if rank == 0 else []
    if rank == 0:
        _write_rows(Path(job.shard_dir) / "table.csv", merge(job, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
