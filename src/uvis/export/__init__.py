"""uvis results in the tools people already use: supervision ``Detections``, FiftyOne video datasets, COCO.

``supervision`` and ``fiftyone`` are optional (``pip install 'uvis[interop]'``); a missing one is a
``UserError`` naming the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from uvis.errors import UserError


def require(module: str, extra: str = "interop") -> ModuleType:
    """Import an optional package, or a UserError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"this needs the Python package '{module}', which is not installed",
                        fix=f"pip install 'uvis[{extra}]' (or pip install {module})") from None
