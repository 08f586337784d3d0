"""Moved to :mod:`lenet.digits.kit.synth` (``python -m lenet.digits.kit.synth``). This name
forwards there, with a DeprecationWarning, for one release."""

import sys
import warnings

from .kit import synth

_MOVED = ("lenet.digits.synth moved to lenet.digits.kit.synth (python -m lenet.digits.kit.synth); "
          "the old name goes in the next release")

if __name__ == "__main__":
    # stacklevel 1: attributed to __main__, where Python shows a DeprecationWarning by default.
    warnings.warn(_MOVED, DeprecationWarning, stacklevel=1)
    sys.exit(synth.main())
warnings.warn(_MOVED, DeprecationWarning, stacklevel=2)
# The same module object: every name (private ones too) and every later change to it.
sys.modules[__name__] = synth
