"""Phase 5, speed: CPU latency of whole models and speed-ups with confidence intervals (`bench`)."""
