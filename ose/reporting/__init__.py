"""Phase 6, reporting: figures (`figures`) and the Markdown pieces every stage's report section
shares (`markdown`). Each section lives with its stage (`ose.stages.<stage>`); `ose.stages.report`
assembles the report."""
