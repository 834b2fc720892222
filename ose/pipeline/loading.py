"""Loading Hugging Face models without transformers' load report.

`from_pretrained` prints a table of the tensors it skipped or initialised (with the absolute path
of the folder), e.g. the pooler of a sentence encoder or the MLM head of a student loaded as a bare
encoder. Where that is by design, the project loads quietly and states what matters itself
(`ose.training.source_model.check_loading`, `ose.training.pretraining.check_loads`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from transformers.utils import logging as hf_logging


@contextmanager
def quietly() -> Iterator[None]:
    """transformers' logging at ERROR inside the block, restored after it (even on error)."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
