"""Phase 4, fine-tuning: Bort's classification head and its fine-tuning (`classifier`), Agora's
loop (`agora`) and its default generator for text (`generator`), the paired experiment that tests
it (`comparison`), what its records say (`effects`), and the blog's toy example on a torus
(`torus`).
"""
