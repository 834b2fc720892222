"""Atomic file writes: a reader never sees a half-written file, even if the writer is killed."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, rename it over `path`.

    The temporary file lives in the same directory so that `os.replace` is a rename on one file
    system (atomic on POSIX). On error the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_torch_atomic(obj: object, path: str | Path) -> Path:
    """`torch.save` to `path` atomically, with bytes that depend only on `obj`.

    Saving to an open file handle, not to a path: given a path, `torch.save` names the archive's
    top folder after the file, and the temporary file's name is random, so equal tensors would get
    different bytes (and a DVC output a new md5) on every run.
    """
    import torch

    with atomic_path(path) as tmp, tmp.open("wb") as f:
        torch.save(obj, f)
    return Path(path)
