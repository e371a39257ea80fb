"""Models: loading configs, tokenizers and weights with readable errors, Hub reachability, LoRA adapters.
"""
