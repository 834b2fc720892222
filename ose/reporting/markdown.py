"""The report's Markdown pieces that every stage's section shares: numbers, figures, claim rows.

Each stage module (`ose.stages.<stage>`) writes its own section of the report and its rows of the
claims table with these; `ose.stages.report` assembles them. Nothing here reads a stage's result
class, so this module stays below the stages.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ose.pipeline.results import StageResult

VERDICTS = ("reproduced", "reproduced at reduced scale", "not reproduced", "not testable here")


def read_table(path: str | Path) -> list[dict]:
    """A table CSV that a stage wrote (`ose.pipeline.results.write_table`), its cells typed by pandas;
    an empty cell reads back as an empty string."""
    frame = pd.read_csv(path)
    return frame.astype(object).where(frame.notna(), "").to_dict(orient="records")


def fmt(value, digits: int = 3) -> str:
    """A number as the report writes it: "n/a" for None, yes/no, thousands separators, `digits` decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def produced_by(m: StageResult | None, *stages: str) -> str:
    """The line under a section's title: which stage(s) wrote its numbers, under which profile
    (`m.profile`)."""
    names = " and ".join(f"`{stage}`" for stage in stages)
    profile = m.profile if m else "n/a"
    return f"*Stage{'s' if len(stages) > 1 else ''} {names}, profile `{profile}`.*\n\n"


def figure(name: str, caption: str) -> str:
    """A figure of `reports/figures/` with its caption."""
    return f"![{caption}](figures/{name})\n\n*{caption}*\n\n"


def claim_row(claim: str, paper_says: str, here: str, verdict: str, where: str) -> dict:
    """One row of the claims table; `verdict` is one of `VERDICTS`."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {list(VERDICTS)}, got {verdict!r}")
    return {"claim": claim, "paper": paper_says, "here": here, "verdict": verdict, "where": where}
