"""The pipeline's stages, one module each: `run(params, paths) -> (Result, shown)`.

A stage's notebook calls `run` with the validated params and its `Paths` (the notebook's
parameters, which `dvc.yaml` passes), then displays `shown`: the Markdown tables and the PNG
figures `run` wrote, by name. `Result` is the stage's metrics, typed; `run` writes it to
`reports/metrics/<stage>.json` and `ose.stages.report` reads it back with `Result.read`. Nothing
downstream reads a notebook.
"""
