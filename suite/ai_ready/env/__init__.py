"""Runtime detection: what this process runs on and how it was launched."""
