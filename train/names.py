"""Names of the architectures and initialisations, importable without torch.

The CLIs list them as argparse choices; keeping them here lets ``--help`` answer instantly.
"""

ARCHS = ("lenet", "bn-lenet")
INITS = ("default", "course", "kaiming", "normal")
SPLIT_NAMES = ("train", "valid", "test")
