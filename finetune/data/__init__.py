"""Data: Hub datasets, local files and GLUE folders as `datasets` splits, the tokenization cache and length-grouped
ordering. Task-independent: which columns hold what is the task's business.
"""
