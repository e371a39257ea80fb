"""Training: `run(recipe)`, TrainingArguments, the Trainer subclass, resume and Ctrl-C, multi-process launch,
the pre-flight check and the offline smoke run.
"""
