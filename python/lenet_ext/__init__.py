"""lenet_ext: fast batched LeNet inference (C++ core; numpy in, numpy out)."""

from ._core import __version__, build_info

__all__ = ["__version__", "build_info"]
