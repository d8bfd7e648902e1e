"""vr-bench: open-loop latency benchmark for vr-serve, measured as a headset would feel it."""
