"""`finetune evaluate`: what a checkpoint is, scoring it on benchmark tasks, suites, results files, leaderboards.
"""
