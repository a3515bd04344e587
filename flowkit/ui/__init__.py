"""``flowkit ui``: a local web page of the runs in the store, live.

Needs the ``ui`` extra (``pip install 'flowkit[ui]'``: Starlette and uvicorn). Nothing
else in flowkit imports this package, so ``import flowkit`` never pays for it.
"""

from __future__ import annotations

from ._app import create_app as create_app
from ._serve import serve as serve

__all__ = ["create_app", "serve"]
