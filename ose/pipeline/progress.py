"""Progress of long loops, the one way the project shows it.

In a terminal, a live tqdm bar. Anywhere else (a notebook that papermill runs: its kernel's
streams are never a terminal; a log file; CI), a few plain lines per loop: one as the loop passes
25%, 50% and 75% of its total, one at least every `EVERY_SECONDS` of a loop that runs long between
those, and a last line with the elapsed time and the rate. A rendered notebook keeps every write of
a bar as one stream output, so a redrawn bar left thousands of fragments in the record of a run;
a few lines per loop keep it readable.

We never use `tqdm.auto`: inside a Jupyter kernel without ipywidgets it warns "IProgress not
found" and falls back to the redrawn bar anyway.

    for step in bar(range(steps), desc="train", unit="step", disable=not progress):
        ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from tqdm.std import tqdm

MILESTONES = (0.25, 0.5, 0.75)  # fractions of the total at which a line is written
EVERY_SECONDS = 300.0  # a line at least this often (s) while a loop runs between milestones


def bar(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    disable: bool = False,
    stream: IO[str] | None = None,
    live: bool | None = None,
) -> tqdm | Lines:
    """A progress indicator over `iterable` (or one updated by hand up to `total`).

    Both kinds of result iterate like `iterable` and have `update(n)`, `set_postfix(**values)` and
    `close()`, as a tqdm bar has. `live` chooses a redrawn tqdm bar (True) or `Lines` (False);
    None decides by whether `stream` (default stderr for a bar, stdout for lines) is a terminal.
    `initial` counts what a resumed loop had done before it started; the rate counts only what
    this run does. `disable` shows nothing and costs almost nothing.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if live is None:
        live = (stream or sys.stderr).isatty()
    if live or disable:
        return tqdm(
            iterable, desc=desc, total=total, unit=unit, initial=initial, disable=disable, file=stream
        )
    return Lines(iterable, total=total, desc=desc, unit=unit, initial=initial, stream=stream)


class Lines:
    """Progress as a few plain lines: milestones of the total, a line every `every_seconds`, a summary.

    `clock` (seconds, monotonic) is injectable so tests need not wait. The summary line, written by
    `close()` (and when iteration ends, completed or broken off), reads e.g.
    `train: 600/600 step in 17m32s (0.570 step/s), loss=3.121`.
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        stream: IO[str] | None = None,
        milestones: tuple[float, ...] = MILESTONES,
        every_seconds: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        if every_seconds <= 0:
            raise ValueError(f"every_seconds must be > 0 seconds, got {every_seconds}")
        if any(not 0 < m < 1 for m in milestones):
            raise ValueError(f"milestones must be fractions strictly between 0 and 1, got {milestones}")
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.initial = initial
        self.stream = stream
        self.every_seconds, self.clock = every_seconds, clock
        self.postfix: dict[str, Any] = {}
        self.started = self.last_line = clock()
        self.closed = False
        done = initial / total if total else 0.0
        self.milestones = [m for m in sorted(milestones) if m > done]  # those still to pass

    def __len__(self) -> int:
        return int(self.total or 0)

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        except GeneratorExit:  # the loop over us broke off: it had taken this item
            self.n += 1
            raise
        finally:
            self.close()

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **values: Any) -> None:
        """Values shown after the count on the next line (e.g. the current loss), as tqdm shows them."""
        self.postfix = {**(ordered_dict or {}), **values}

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        passed = False
        while self.milestones and self.total and self.n >= self.milestones[0] * self.total:
            self.milestones.pop(0)
            passed = True
        if passed or now - self.last_line >= self.every_seconds:
            self._write(self._progress_line(now), now)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            now = self.clock()
            self._write(self._summary_line(now), now)

    def _write(self, line: str, now: float) -> None:
        stream = self.stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()
        self.last_line = now

    def _count(self) -> str:
        return f"{_number(self.n)}/{_number(self.total)}" if self.total else _number(self.n)

    def _extra(self) -> str:
        return "".join(f", {key}={value}" for key, value in self.postfix.items())

    def _progress_line(self, now: float) -> str:
        elapsed = now - self.started
        line = f"{self.desc}: {self._count()} {self.unit}"
        if self.total:
            line += f" ({self.n / self.total:.0%})"
        line += f", {format_seconds(elapsed)} elapsed"
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        if self.total and rate > 0:
            line += f", ~{format_seconds((self.total - self.n) / rate)} left"
        return line + self._extra()

    def _summary_line(self, now: float) -> str:
        elapsed = now - self.started
        done = self.n - self.initial
        verb = "stopped at" if self.total and self.n < self.total else "done,"
        line = f"{self.desc}: {verb} {self._count()} {self.unit} in {format_seconds(elapsed)}"
        if elapsed > 0:
            line += f" ({done / elapsed:.3g} {self.unit}/s)"
        if self.initial:
            line += f", resumed at {_number(self.initial)}"
        return line + self._extra()


def format_seconds(seconds: float) -> str:
    """A duration for people: '0.42s', '42.0s', '4m02s', '1h04m02s'."""
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
