"""The ``flowkit`` command: ``flowkit demo`` runs the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import demo

__all__ = ["main"]

# Each command parses its own arguments: name -> (entry point, one-line help).
COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "demo": (demo.main, "run the demo flow offline, against a local stand-in API"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flowkit`` command; ``argv`` as on the command line, without the program."""
    parser = argparse.ArgumentParser(
        prog="flowkit", description="flowkit: observable, retryable units of work."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help) in COMMANDS.items():
        commands.add_parser(name, help=help, add_help=False)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    entry, _ = COMMANDS[args.command]
    return entry(rest)


if __name__ == "__main__":
    raise SystemExit(main())
