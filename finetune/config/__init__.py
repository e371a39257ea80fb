"""Recipes: the schema (every key, its type, default and meaning), loading YAML with extends and key=value
overrides, and the table of command-line flags derived from the schema. Pure Python and pydantic: no torch.
"""
