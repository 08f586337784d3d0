"""lenet: LeNet-5 as LeCun et al. 1998 published it, its variants, training and export."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lenet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from .spec import ArchSpec, Preprocessing, SpecError, spec_for  # noqa: E402

__all__ = ["ArchSpec", "Preprocessing", "SpecError", "__version__", "spec_for"]
