"""The one training loop: the Task interface, the Trainer and its Evaluator, the compiled
step loop, the run directory, the input pipeline and the distribution strategy."""
