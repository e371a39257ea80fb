"""What a run leaves on disk: the run directory's layout, atomic files, model card, plots, pushing to the Hub.
"""
