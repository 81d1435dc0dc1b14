"""End-to-end tests: pytest runs of specs through the installed plugin (pytester)."""

# In-process pytester runs restore sys.modules afterwards; a C extension first imported inside
# one run cannot be imported again in the next.  Import the heavy libraries up front, here only:
# the stage tests import what each needs.
import timm  # noqa: F401
import torch  # noqa: F401
import torchvision  # noqa: F401
