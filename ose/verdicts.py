"""The claims table's verdict rules, written once; every row of the report applies them.

docs/science.md ("Verdict rules") and the head of reports/README.md state the same rules in words:

1. **A paper figure covers what its precision implies**: half a unit of its last stated digit on
   either side (`stated_interval`): "20×" is [19.5, 20.5), "7.9×" [7.85, 7.95), "16%" [15.5, 16.5),
   "56M" [55.5, 56.5).
2. **A quantity** (a size, a speed-up) is *reproduced* when our measurement meets that interval:
   an exact count inside it, or a 95% interval that overlaps it; otherwise *not reproduced*, and the
   row says on which side (`quantity_verdict`). A claim of several figures is reproduced when all
   are (`combined`).
3. **An effect the paper claims for its method** (distillation helps, Agora helps, the extracted model
   is as accurate as its source) is measured at our scale, never the paper's: *reproduced at reduced
   scale* when it is *established* (the paired effect lies on the claimed side and its test, Holm-
   corrected within its family, has p < 0.05; for a claim with a margin, "no worse than its source
   by more than m", when the 95% interval's lower bound clears −m); otherwise *not reproduced*, read
   as *contradicted* (the interval lies wholly on the other side) or *inconclusive* (it does not
   decide at our seeds) (`effect_reading`, `effect_verdict`). Several effects behind one claim: at
   least one established and none contradicted (`combined_effects`).
4. **Within seed noise**: a difference between two arms no larger than the spread (max − min) of
   one arm over seeds at the same settings; it is reported, and counted neither way (`within_noise`).
5. **Not testable here**: the claim needs what this setup lacks (BERT-large fine-tuned, the GLUE
   test servers, the paper's hardware), or the stage that measures it has not run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

REPRODUCED = "reproduced"
REDUCED = "reproduced at reduced scale"
NOT_REPRODUCED = "not reproduced"
NOT_TESTABLE = "not testable here"
ALPHA = 0.05  # the corrected p under which an effect is established

ESTABLISHED, CONTRADICTED, INCONCLUSIVE = "established", "contradicted", "inconclusive"


def stated_interval(figure: float | int | str) -> tuple[float, float]:
    """[low, high) of the values a figure stated as `figure` rounds from: ± half a unit of its last
    digit ("20" → (19.5, 20.5), "7.9" → (7.85, 7.95)). A float is read as Python prints it (`:g`)."""
    text = figure if isinstance(figure, str) else f"{figure:g}"
    value = Decimal(text.strip())
    if not value.is_finite():
        raise ValueError(f"a paper figure must be a finite number, got {figure!r}")
    half = Decimal(5) * Decimal(10) ** (value.as_tuple().exponent - 1)
    return float(value - half), float(value + half)


def side(measured: float | tuple[float, float], figure: float | int | str) -> str:
    """Where our value (or 95% interval) sits against the figure's stated interval: "inside" (meets
    it), "below" or "above" (wholly under or over it)."""
    low, high = (measured, measured) if isinstance(measured, int | float) else measured
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"a measurement must be a finite value or an ordered interval, got {measured!r}")
    start, end = stated_interval(figure)
    if high < start:
        return "below"
    if low >= end:
        return "above"
    return "inside"


def quantity_verdict(measured: float | tuple[float, float], figure: float | int | str) -> str:
    """Rule 2: reproduced when our value or interval meets the figure's stated interval."""
    return REPRODUCED if side(measured, figure) == "inside" else NOT_REPRODUCED


def combined(verdicts: Sequence[str]) -> str:
    """Rule 2, for a claim of several figures: reproduced when every one is; not testable when none
    could be tested; else not reproduced."""
    if not verdicts or all(v == NOT_TESTABLE for v in verdicts):
        return NOT_TESTABLE
    return REPRODUCED if all(v == REPRODUCED for v in verdicts) else NOT_REPRODUCED


def effect_reading(
    mean: float,
    ci_low: float,
    ci_high: float,
    p: float | None = None,
    direction: int = 1,
    margin: float | None = None,
) -> str:
    """Rule 3 for one effect (in the claim's units; `direction` +1: the claim says it is positive,
    −1: negative). Without `margin`: established when the mean lies on the claimed side and the
    corrected `p` < ALPHA; contradicted when the interval lies wholly on the other side of 0. With
    `margin` m (a non-inferiority claim, direction +1: effect ≥ −m): established when ci_low ≥ −m,
    contradicted when ci_high < −m. Otherwise inconclusive."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, got {direction!r}")
    values = (mean, ci_low, ci_high)
    if any(v is None or math.isnan(v) for v in values):
        return INCONCLUSIVE
    mean, low, high = (direction * v for v in values)
    low, high = min(low, high), max(low, high)
    if margin is not None:
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        return ESTABLISHED if low >= -margin else CONTRADICTED if high < -margin else INCONCLUSIVE
    if p is not None and not math.isnan(p) and p < ALPHA and mean > 0:
        return ESTABLISHED
    return CONTRADICTED if high < 0 else INCONCLUSIVE


def effect_verdict(reading: str) -> str:
    """Rule 3: an established effect is reproduced at reduced scale; any other is not reproduced."""
    if reading not in (ESTABLISHED, CONTRADICTED, INCONCLUSIVE):
        raise ValueError(f"reading must be one of established, contradicted, inconclusive; got {reading!r}")
    return REDUCED if reading == ESTABLISHED else NOT_REPRODUCED


def combined_effects(readings: Sequence[str]) -> str:
    """Rule 3, several effects behind one claim: reproduced at reduced scale when at least one is
    established and none contradicted; not testable when there are none."""
    if not readings:
        return NOT_TESTABLE
    if ESTABLISHED in readings and CONTRADICTED not in readings:
        return REDUCED
    return NOT_REPRODUCED


def within_noise(difference: float, spread: float | None) -> bool:
    """Rule 4: a difference no larger than the seeds' spread (max − min) counts neither way."""
    return spread is not None and not math.isnan(spread) and abs(difference) <= spread


RULES_MARKDOWN = (
    '**Verdict rules** (`ose.verdicts`; docs/science.md, "Verdict rules"). '
    "(1) A paper figure covers what its precision implies, half a unit of its last digit either side: "
    '"20×" is [19.5, 20.5), "7.9×" [7.85, 7.95), "16%" [15.5, 16.5). '
    "(2) A quantity (size, speed-up) is *reproduced* when our exact count lies in that interval or our "
    "95% interval overlaps it; otherwise *not reproduced*; a claim of several figures needs all of them. "
    "(3) An effect the paper claims for its method is measured at our scale, never the paper's: "
    "*reproduced at reduced scale* when it is established (on the claimed side with Holm-corrected "
    "p < 0.05 within its family; for a margin claim, the 95% interval's lower bound clears the margin), "
    "else *not reproduced*: contradicted (the interval lies wholly on the other side) or inconclusive "
    "at our seeds; several effects behind one claim need one established and none contradicted. "
    "(4) *Within seed noise*: a difference no larger than one arm's spread (max − min) over seeds; "
    "it counts neither way. (5) *Not testable here*: the claim needs what this setup lacks (BERT-large "
    "fine-tuned, the GLUE test servers, the paper's hardware), or its stage has not run."
)
