"""`ose.pipeline.progress`: a live bar in a terminal, a few lines elsewhere (a rendered notebook keeps every
write as one stream output; a redrawn bar once left 2,428 of them in one notebook)."""

import ast
import io
import itertools

import pytest
from tqdm.std import tqdm

from ose.pipeline import paths
from ose.pipeline.progress import Lines, bar, format_seconds


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    """A monotonic clock that advances `step` seconds each time it is read."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_1000_step_loop_writes_at_most_four_lines_off_a_terminal():
    out = io.StringIO()
    total = 0
    for i in bar(range(1000), desc="train", unit="step", stream=out):
        total += i
    lines = lines_of(out)
    assert total == sum(range(1000))
    assert len(lines) == 4, lines  # 25%, 50%, 75%, and the summary
    assert [line.split("(")[1].split(")")[0] for line in lines[:3]] == ["25%", "50%", "75%"]
    assert lines[-1].startswith("train: done, 1000/1000 step in ")
    assert "step/s" in lines[-1]


def test_a_slow_loop_writes_a_line_at_least_every_interval():
    out = io.StringIO()
    clock = FakeClock(step=1.0)  # each step reads the clock once: 1 s per step
    progress = Lines(range(1000), total=1000, desc="slow", stream=out, every_seconds=100, clock=clock)
    for _ in progress:
        pass
    lines = lines_of(out)
    # 1000 s: a line per 100 s (three of them at the milestones), the summary; never one per step
    assert len(lines) == 12, lines
    assert lines[0].startswith("slow: 100/1000 it (10%), 1m40s elapsed, ~15m00s left"), lines[0]
    assert lines[-1].startswith("slow: done, 1000/1000 it in 16m4"), lines[-1]


def test_a_terminal_gets_a_live_tqdm_bar():
    progress = bar(range(3), desc="live", stream=Terminal())
    assert isinstance(progress, tqdm)
    assert list(progress) == [0, 1, 2]


def test_disabled_progress_writes_nothing():
    out = io.StringIO()
    progress = bar(total=10, disable=True, stream=out)
    for _ in range(10):
        progress.update(1)
        progress.set_postfix(loss="1.0")
    progress.close()
    assert out.getvalue() == ""


def test_a_loop_broken_off_says_where_it_stopped_and_shows_the_postfix():
    out = io.StringIO()
    progress = bar(range(100), desc="agora", unit="round", stream=out)
    for i in progress:
        progress.set_postfix(best="0.812")
        if i == 9:
            break
    del progress
    last = lines_of(out)[-1]
    assert last.startswith("agora: stopped at 10/100 round in "), last
    assert last.endswith(", best=0.812")


def test_updates_by_hand_and_a_resumed_run():
    out = io.StringIO()
    clock = FakeClock(step=0.5)
    with Lines(total=1000, desc="train", unit="step", initial=400, stream=out, clock=clock) as progress:
        for _ in range(600):
            progress.update(1)
    lines = lines_of(out)
    assert len(lines) == 3, lines  # 25% had passed before the run resumed: 50%, 75%, summary
    assert "resumed at 400" in lines[-1]
    # the rate counts only this run's 600 steps, each one clock read (0.5 s) long: 2 step/s, not 3.3
    rate = float(lines[-1].split("(")[1].split(" ")[0])
    assert 1.98 < rate <= 2.0


def test_an_iterable_of_unknown_length_gets_only_the_summary():
    out = io.StringIO()
    for _ in bar((i for i in range(50)), desc="tokenize", unit="batch", stream=out):
        pass
    assert lines_of(out) == [lines_of(out)[0]]
    assert lines_of(out)[0].startswith("tokenize: done, 50 batch in ")


def test_close_is_idempotent():
    out = io.StringIO()
    progress = Lines(total=2, stream=out)
    progress.update(2)
    progress.close()
    progress.close()
    assert sum("done" in line for line in lines_of(out)) == 1


@pytest.mark.parametrize("every, milestones", [(0, (0.5,)), (10, (0.0, 0.5)), (10, (1.0,))])
def test_invalid_settings_name_the_parameter(every, milestones):
    with pytest.raises(ValueError, match="every_seconds|milestones"):
        Lines(total=10, every_seconds=every, milestones=milestones)


@pytest.mark.parametrize(
    "seconds, text",
    [(0.4213, "0.42s"), (42.04, "42.0s"), (242, "4m02s"), (3842, "1h04m02s"), (59.96, "60.0s")],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


MODULES = sorted((paths.ROOT / "ose").rglob("*.py"))


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(paths.ROOT)))
def test_progress_is_shown_only_through_ose_progress(module):
    """tqdm directly (and tqdm.auto, whose notebook path warns "IProgress not found") only in
    ose.pipeline.progress."""
    if module.name == "progress.py" and module.parent.name == "pipeline":
        return
    tree = ast.parse(module.read_text(encoding="utf-8"))
    imported = itertools.chain.from_iterable(
        [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
    )
    offending = [name for name in imported if name == "tqdm" or name.startswith("tqdm.")]
    assert not offending, f"{module.name} imports {offending}: use `from ose.pipeline.progress import bar`"
