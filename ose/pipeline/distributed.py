"""Several processes with torchrun: one launcher and one process-group set-up for every stage.

A stage writes its job as JSON and either runs it in this process or starts
`torchrun --standalone --nproc_per_node=N -m MODULE JOB.json`; each worker reads its rank and the
world size from torchrun's environment. Gloo on CPU, NCCL when GPUs are present.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist


def torchrun(module: str, job_path: str | Path, nproc: int, threads: int = 1) -> None:
    """Run `python -m module job_path` in `nproc` torchrun workers, `threads` intra-op threads each."""
    if nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc}")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        module,
        str(job_path),
    ]
    subprocess.run(command, check=True, env=env)


def worker_device() -> torch.device:
    """This worker's device: GPU `LOCAL_RANK` (torchrun's, 0 outside it) when GPUs are present, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


@contextmanager
def process_group() -> Iterator[tuple[int, int]]:
    """(rank, world size) of this worker; joins and leaves the process group when world > 1.

    With GPUs, each worker first makes its own GPU the current device: NCCL needs one GPU per
    process, and collectives on Python objects (`gather_object`) stage them on the current device.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        if torch.cuda.is_available():
            torch.cuda.set_device(worker_device())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield rank, world
    finally:
        if world > 1:
            dist.destroy_process_group()
