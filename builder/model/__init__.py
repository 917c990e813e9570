"""Model code: the prompt and labels (importable without torch), training, evaluation.

Anything that needs torch, transformers or peft is imported lazily inside the
functions that use it, so that building a release never imports torch.
"""
