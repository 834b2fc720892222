"""Phase 3, optimal subarchitecture extraction: the objectives p(ξ) and i(ξ) by exact accounting
(`objectives`), measured latency and its polynomial fit (`cost_model`), the AB^nC property (`abnc`),
the surrogate error ê over a space (`surrogate`), whether ê ranks architectures (`ranking`,
`surrogate_check`), the FPTAS itself (`fptas`) and its wiring to real models (`extraction`).
"""
