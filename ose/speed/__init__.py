"""Phase 5, speed: CPU latency of whole models in interleaved rounds (`harness`), speed-up ratios
with bootstrap intervals (`ratios`), the machine's matrix-product peak as the hardware reference
(`gemm`), and ONNX Runtime export, int8 quantisation and equivalence checks (`onnx`).
"""
