"""What the paired experiment's records say (`ose.finetuning.comparison.compare_on_task`): each arm's
scores over seeds, the paired effects Agora − plain and Agora − control (`ose.stats`), the tables
the stage writes, and the verdict with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from ose.stats import paired_effect

ARMS = ("plain", "agora", "control")  # per student, paired by seed
CONTRASTS = {  # name: (arm a, arm b) of the paired difference a − b
    "agora_vs_plain": ("agora", "plain"),
    "agora_vs_control": ("agora", "control"),
}
LABELLER = "labeller"
# Agora's author asks of S an "ok-ish" accuracy; we read it as at least 2/3 on the test split, and
# mark the seeds whose S falls below it (their Agora arms were labelled by a weaker S).
LABELLER_FLOOR = 2 / 3


def summarise(scores: Sequence[float]) -> dict:
    """{scores, mean, std (ddof 1; 0 for one score)} of one arm's scores over seeds."""
    values = np.asarray(scores, dtype=float)
    return {
        "scores": values.tolist(),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# Tables and statistics from the records


def arm_scores(comparison: dict, student: str, arm: str) -> list[float]:
    """Test scores of one student's arm (or, with arm "labeller", of S), in the order of the seeds."""
    by_seed = {r["seed"]: r for r in comparison["records"] if r["student"] == student}
    if arm == LABELLER:
        return [by_seed[s]["labeller"]["score"] for s in comparison["seeds"]]
    return [by_seed[s]["arms"][arm]["score"] for s in comparison["seeds"]]


def labeller_scores(comparison: dict) -> list[float]:
    """S's test score per seed (S is shared by the students of a seed)."""
    return arm_scores(comparison, comparison["students"][0], LABELLER)


def labeller_below_floor(comparison: dict, floor: float = LABELLER_FLOOR) -> list[int]:
    """The seeds whose S scores below `floor` on the test split."""
    scores = labeller_scores(comparison)
    return [seed for seed, score in zip(comparison["seeds"], scores, strict=True) if score < floor]


def arm_field(comparison: dict, student: str, arm: str, field: str) -> list:
    """One field of one student's arm per seed (in the order of the seeds; None where absent)."""
    by_seed = {r["seed"]: r for r in comparison["records"] if r["student"] == student}
    return [by_seed[s]["arms"][arm].get(field) for s in comparison["seeds"]]


def loop_rounds(comparison: dict, student: str, arm: str) -> list[list[dict]]:
    """Per seed, the rounds of one of `student`'s loops (`arm`: agora or control), in order."""
    by_seed = {r["seed"]: r for r in comparison["records"] if r["student"] == student}
    return [[e for e in by_seed[s]["rounds"] if e["arm"] == arm] for s in comparison["seeds"]]


def theta_sizes(comparison: dict, student: str, arm: str) -> list[list[int]]:
    """Per seed, |Θ| after each of a loop's rounds (`arm`: agora or control)."""
    return [
        [len(e["remaining"]) for e in rounds if not e["replay"]]
        for rounds in loop_rounds(comparison, student, arm)
    ]


def at_chance(scores: Sequence[float], chance: float, confidence: float = 0.95) -> bool:
    """Whether an arm is at chance: the t interval of its mean score over seeds contains `chance` (or
    lies below it). One seed: its score is within a point of chance."""
    values = np.asarray([v for v in scores if v is not None and math.isfinite(v)], dtype=float)
    if len(values) == 0:
        return True
    if len(values) < 2 or values.std(ddof=1) == 0:
        return float(values.mean()) <= chance + 0.01
    low, _ = scipy_stats.t.interval(
        confidence, len(values) - 1, loc=values.mean(), scale=values.std(ddof=1) / math.sqrt(len(values))
    )
    return bool(low <= chance)


def paired_effects(comparison: dict, student: str) -> dict[str, dict]:
    """Each contrast of `CONTRASTS` as `ose.stats.paired_effect` (a dict), over the seeds.

    A seed where either arm has no score (e.g. a correlation of constant predictions, NaN) is left
    out of that contrast, so its n counts the seeds actually compared.
    """
    effects = {}
    for name, (a, b) in CONTRASTS.items():
        pairs = [
            (x, y)
            for x, y in zip(
                arm_scores(comparison, student, a), arm_scores(comparison, student, b), strict=True
            )
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
        ]
        if not pairs:
            raise ValueError(f"{comparison['task']}, {student}: no seed has scores for both {a} and {b}")
        effects[name] = paired_effect(*zip(*pairs, strict=True)).as_dict()
    return effects


def score_rows(comparison: dict) -> list[dict]:
    """One row per seed: S's test score, then each student's arms, side by side (paired)."""
    rows = []
    for seed in comparison["seeds"]:
        records = [r for r in comparison["records"] if r["seed"] == seed]
        row = {"seed": seed, LABELLER: records[0]["labeller"]["score"]}
        for record in records:
            for arm in ARMS:
                row[f"{record['student']} {arm}"] = record["arms"][arm]["score"]
        rows.append(row)
    return rows


def arm_rows(comparison: dict) -> list[dict]:
    """One row per seed, student and arm (and S), with every test metric: the full record."""
    rows = []
    for record in comparison["records"]:
        base = {"task": record["task"], "seed": record["seed"], "student": record["student"]}
        if record["student"] == comparison["students"][0]:
            rows.append({**base, "student": "-", "arm": LABELLER, **record["labeller"]})
        rows += [{**base, "arm": arm, **record["arms"][arm]} for arm in ARMS]
    columns = list(dict.fromkeys(k for row in rows for k in row))  # S has no θ, round or points
    return [{c: row.get(c, "") for c in columns} for row in rows]


def round_rows(comparison: dict) -> list[dict]:
    """Both loops' rounds, one row per seed, student, arm and round: a `dev <θ>` column per θ, |Θ|
    after the round, and why the loop stopped (its last round only)."""
    rows = [
        {
            "seed": record["seed"],
            "student": record["student"],
            **{
                k: v
                for k, v in entry.items()
                if k not in ("scores", "removed", "remaining", "losses", "stop")
            },
            **{f"dev {name}": score for name, score in entry["scores"].items()},
            "|Θ| left": len(entry.get("remaining", [])),
            "stop": entry.get("stop", ""),
        }
        for record in comparison["records"]
        for entry in record["rounds"]
    ]
    columns = list(dict.fromkeys(k for row in rows for k in row))  # a θ's column only once it ran
    return [{c: row.get(c, "") for c in columns} for row in rows]


def collapsed_rounds(comparison: dict, student: str) -> int:
    """Rounds (both loops, all seeds) whose best model predicted one class for the whole dev set."""
    return sum(
        entry["constant_predictor"]
        for record in comparison["records"]
        if record["student"] == student
        for entry in record["rounds"]
    )


def mean_agreement(comparison: dict, student: str, arm: str) -> float:
    """Share of one arm's added points that S labelled as their anchor's true label (all seeds)."""
    agreeing = total = 0.0
    for record in comparison["records"]:
        if record["student"] != student:
            continue
        for entry in record["rounds"]:
            share = entry.get("anchor_agreement")
            if entry["arm"] == arm and entry["added"] and share is not None and not math.isnan(share):
                agreeing += share * entry["added"]
                total += entry["added"]
    return agreeing / total if total else math.nan


# ---------------------------------------------------------------------------------------------
# The verdict


def _direction(effect: Mapping, p_adjusted: float, alpha: float) -> int:
    """+1 / −1 for a difference significant at `alpha` after correction, 0 otherwise."""
    if p_adjusted is None or math.isnan(p_adjusted) or p_adjusted >= alpha or effect["mean"] == 0:
        return 0
    return 1 if effect["mean"] > 0 else -1


def _points(effect: Mapping) -> str:
    """'+1.2 points [−0.3, +2.7]': a mean difference of accuracies and its CI, in points (×100)."""
    low, high = effect["ci_low"], effect["ci_high"]
    interval = "" if low is None or math.isnan(low) else f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    return f"{100 * effect['mean']:+.1f} points{interval}"


CONCLUSIONS = {  # (direction vs plain, direction vs control) → what follows
    (1, 1): "Agora helps, and more than as many S-labelled points placed at random (the control): "
    "placing them near the dev mistakes matters",
    (1, 0): "Agora beats plain fine-tuning but not the control: the gain is explained by more "
    "S-labelled points, not by their placement near the dev mistakes",
    (1, -1): "Agora beats plain fine-tuning, but the control beats Agora: more S-labelled points "
    "help, and placing them near the dev mistakes hurts",
    (0, 1): "Agora does not beat plain fine-tuning, but it beats the control: points placed at "
    "random hurt more than points near the dev mistakes",
    (0, 0): "no detectable effect: Agora's differences from plain fine-tuning and from the control "
    "are within seed noise",
    (0, -1): "Agora does not beat plain fine-tuning and the control beats it",
    (-1, 1): "Agora hurts, though less than as many points placed at random",
    (-1, 0): "Agora hurts: it is worse than plain fine-tuning",
    (-1, -1): "Agora hurts: worse than plain fine-tuning and than the control",
}


def verdict(effects: Mapping[str, Mapping], p_adjusted: Mapping[str, float], alpha: float = 0.05) -> str:
    """One line that follows from the numbers: the two contrasts' effects, CIs and corrected p.

    effects: `paired_effects`' dict; p_adjusted: contrast → its Holm-corrected p-value. A contrast
    counts only when its corrected p is below `alpha`; otherwise it is "no detectable difference",
    which is a result, not a failure.
    """
    plain, control = effects["agora_vs_plain"], effects["agora_vs_control"]
    key = (
        _direction(plain, p_adjusted["agora_vs_plain"], alpha),
        _direction(control, p_adjusted["agora_vs_control"], alpha),
    )
    return (
        f"{CONCLUSIONS[key]} (Agora − plain {_points(plain)}, p = {p_adjusted['agora_vs_plain']:.3g}; "
        f"Agora − control {_points(control)}, p = {p_adjusted['agora_vs_control']:.3g}; Holm-corrected, "
        f"n = {plain['n']} seeds)."
    )
