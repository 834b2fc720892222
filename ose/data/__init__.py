"""Phase 1, data: the pretraining corpus (`corpus`), downstream tasks and their seeded splits
(`tasks`), GLUE and SuperGLUE (`glue`, `superglue`), the user's own files (`user_tasks`), and the
stage's two entry points (`prepare`: `load_tasks`, `prepare_corpus`).
"""
