"""Phase 4, fine-tuning: Bort's classification head and its fine-tuning (`classifier`), Agora's
loop and its generator (`agora`), the paired experiment that tests it (`comparison`) and the
blog's toy example on a torus (`torus`).
"""
