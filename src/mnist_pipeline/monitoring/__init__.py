"""Production monitoring: windows of the inference log and batch scores, drift statistics."""
