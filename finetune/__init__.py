"""finetune: fine-tune Hugging Face models from one command or a YAML recipe.

Importing this package must stay cheap: no torch, transformers, datasets or evaluate here.
"""

__version__ = "0.1.0"
