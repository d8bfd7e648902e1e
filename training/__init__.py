"""Fine-tuning, export and the capture-session data format (kept import-light: no torch at import time)."""
