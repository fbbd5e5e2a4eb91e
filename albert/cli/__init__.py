"""How a program starts and ends: absl flag groups and their typed configs, TensorFlow
start-up, one-line errors. Only the top-level scripts and scripts/ import it."""
