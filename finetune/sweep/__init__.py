"""`finetune sweep`: hyper-parameter search on Optuna, each trial a normal run directory (cli > sweep > eval)."""
