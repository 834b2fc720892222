"""The paper's claims, in one place: every number of de Wynter & Perry (2020) that we put beside ours.

"Optimal Subarchitecture Extraction For BERT" (arXiv 2010.10499), abstract and §4-§5, and its
per-task test scores as the authors' companion repository lists them. These are references only:
nothing here is computed, and every other module (`ose.search.objectives`, `ose.stages.benchmark`,
`ose.stages.report`, ...) reads the paper's figures from here rather than writing them again.
"""

from __future__ import annotations

CITATION = "de Wynter & Perry (2020), Optimal Subarchitecture Extraction For BERT, arXiv 2010.10499"

# --- Bort's size (§4) -----------------------------------------------------------------------------
# Total and embedding parameters (millions), and its size relative to BERT-large: in full, and
# "effective" (everything but the embedding). Keys are the columns of
# `ose.search.objectives.bort_size_claims`.
BORT_SIZE = {
    "total_M": 56.0,
    "embedding_M": 39.0,
    "pct_of_bert_large": 16.0,
    "effective_pct_of_bert_large": 5.5,
}

# --- CPU speed (abstract, §5) ---------------------------------------------------------------------
# The paper gives neither the batch size, the sequence length, the thread count nor the number of
# runs behind these figures, and no interval; `ose.stages.benchmark` therefore locates them on a
# grid of (batch, seq) cells instead of comparing with one cell.
SPEEDUP_VS_BERT_LARGE = 20.0
SPEEDUP_VS_BERT_BASE = 7.9
# The same claims keyed as `ose.reporting.figures.speedup_figure` labels a comparison
# ("<model> vs <reference>", model and reference being `ose.arch` presets): Bort in the shape the
# paper's sizes imply.
SPEEDUPS = {
    "bort-paper vs bert-large": SPEEDUP_VS_BERT_LARGE,
    "bort-paper vs bert-base": SPEEDUP_VS_BERT_BASE,
}

# --- NLU (abstract) -------------------------------------------------------------------------------
NLU_TASKS_BETTER = 20  # tasks where Bort beats BERT-large ...
NLU_TASKS = 23  # ... of this many (GLUE, SuperGLUE, RACE)
NLU_GAIN_PCT = (0.3, 31.0)  # absolute improvement, smallest and largest
PRETRAINING_GPU_HOURS = 288

# --- per-task test scores --------------------------------------------------------------------------
# GLUE and SuperGLUE leaderboard submissions for Bort and BERT-large, on 0-100, "a/b" where the
# benchmark reports two metrics. A different scale from ours (RoBERTa-large teacher, full
# pretraining) and a different test set (the leaderboards' hidden test sets).
SCORES_SOURCE = "de Wynter & Perry (2020), as listed in github.com/alexa/bort README"
GLUE = {
    # task: (metric(s) as reported, Bort, BERT-large)
    "cola": ("MCC", "63.9", "60.5"),
    "sst2": ("accuracy", "96.2", "94.9"),
    "mrpc": ("F1/accuracy", "94.1/92.3", "89.3/85.4"),
    "stsb": ("Pearson/Spearman", "89.2/88.3", "87.6/86.5"),
    "qqp": ("F1/accuracy", "66.0/85.9", "72.1/89.3"),
    "mnli": ("accuracy (matched)", "88.1", "86.7"),
    "qnli": ("accuracy", "92.3", "92.7"),
    "rte": ("accuracy", "82.7", "70.1"),
    "wnli": ("accuracy", "71.2", "65.1"),
}
SUPERGLUE = {
    "boolq": ("accuracy", "83.7", "77.4"),
    "cb": ("F1/accuracy", "81.9/86.5", "75.7/83.6"),
    "rte (SuperGLUE)": ("accuracy", "81.2", "71.7"),
}
AVERAGES = {"GLUE score": ("83.6", "80.5"), "SuperGLUE score": ("74.1", "69.0")}  # (Bort, BERT-large)

# --- the claims in words, from the numbers above ----------------------------------------------------
SIZE = (
    f"{BORT_SIZE['total_M']:g}M parameters ({BORT_SIZE['embedding_M']:g}M of them embeddings): "
    f"{BORT_SIZE['pct_of_bert_large']:g}% of BERT-large's net size, "
    f"{BORT_SIZE['effective_pct_of_bert_large']:g}% of its effective (non-embedding) size"
)
SPEED = (
    f"about {SPEEDUP_VS_BERT_LARGE:g}× faster than BERT-large and {SPEEDUP_VS_BERT_BASE:g}× faster than "
    "BERT-base on a CPU"
)
NLU = (
    f"better than BERT-large on {NLU_TASKS_BETTER} of {NLU_TASKS} NLU tasks (GLUE, SuperGLUE, RACE), by "
    f"{NLU_GAIN_PCT[0]:g}% to {NLU_GAIN_PCT[1]:g}% absolute, after pretraining on {PRETRAINING_GPU_HOURS} "
    "GPU hours and fine-tuning with Agora"
)
