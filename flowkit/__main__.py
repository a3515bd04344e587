"""``python -m flowkit``: the ``flowkit`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
