"""Phase 2, training: the one training loop (`loop`), masked-LM batches and evaluation (`mlm`),
knowledge distillation (`distill`), the source model as a masked-LM teacher (`source_model`),
weight inheritance (`inherit`, an extension beyond the paper) and distillation pretraining of the
extracted architecture (`pretraining`).
"""
