"""Phase 1, data: the pretraining corpus (`corpus`), downstream tasks and their files (`tasks`),
their seeded splits (`splits`) and metrics (`metrics`), GLUE and SuperGLUE (`glue`, `superglue`),
the user's own files (`user_tasks`, read line by line with `jsonl` where they are JSON lines), and
the stage's two entry points (`prepare`: `load_tasks`, `prepare_corpus`).
"""
