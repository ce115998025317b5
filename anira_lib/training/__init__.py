"""Training: the loop and its CLI, one optimizer step, compilation, checkpoints, metric files, run directories, several runs at once."""
