"""Tasks: what the one training loop (albert/training.py) needs to know about a job."""
