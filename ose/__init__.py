"""Optimal subarchitecture extraction (Bort) as a reproducible pipeline.

Modules are named after the paper's concepts: `arch` (the architecture ξ = ⟨D, A, H, I⟩),
`costs` (the objectives p and i), `params` (validated pipeline parameters), and one module per
later stage.
"""

from ose.pipeline.offline import force_offline

force_offline()

__version__ = "0.1.0"
