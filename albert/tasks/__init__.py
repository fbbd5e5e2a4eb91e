"""Tasks: what the one training loop (albert/train/trainer.py) needs to know about a job."""
