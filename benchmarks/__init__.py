"""One module per task: data built from a seed, and the task's metrics."""
