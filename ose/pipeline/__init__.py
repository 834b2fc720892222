"""Plumbing every stage shares, and no science: where files live (`paths`), how they are written
(`atomic`, `results`, `row_cache`), what a resumable state was computed from (`fingerprint`), config
checks (`checks`), progress lines (`progress`), the machine a timing ran on (`machine`), quiet model
loading (`loading`), torchrun workers (`distributed`), the hub kept offline (`offline`), the stages
declared in dvc.yaml (`stages`), rendered notebooks (`rendered`) and stage wall times (`timing`).

Nothing here imports from another `ose` folder: this is the bottom layer.
"""
