"""dlforge's Hydra sweeper (``hydra/sweeper=dlforge``): Optuna searches that resume, run in parallel
and prune."""
