"""Production monitoring: per-image summaries, inference-log reading, drift statistics."""
