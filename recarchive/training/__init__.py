"""Training loops for the shipped models (run by `jobs/train_*.py` and `recarchive train`)."""
