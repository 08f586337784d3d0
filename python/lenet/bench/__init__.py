"""lenet-bench: lenet_ext against each peer at its best, on the CPU (:mod:`.cpu`) or a GPU
(:mod:`.cuda`). Imports flow one way: ``cli`` → ``cpu``/``cuda`` → ``table`` → ``measure``."""

from .cli import main

__all__ = ["main"]
