"""``python -m pytest_robustaudit validate PATH...``: check audit specs without running them;
``python -m pytest_robustaudit cache {list,clear,prune --older-than AGE} [--dir PATH]``: look after
the activation store (docs/store.md).

Validation is pytest's own collection of the specs (``--collect-only``), so a conftest.py that
registers metrics or model sources is honoured exactly as in a real run, and the messages are the
ones a run would print.  Nothing is loaded: no model, no image.  Exit status 0 when every spec is
valid, 1 otherwise, 2 for a usage error: fit for pre-commit.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_robustaudit",
                                     description="Tools for pytest-robustaudit audit specs.")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check audit specs (files or folders) without running them")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    commands.add_parser("cache", help="list, clear or prune the activation store (cache --help)", add_help=False)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "cache":
        from .store import cache_main

        return cache_main(argv[1:], default_cache_dir())
    args = parser.parse_args(argv)
    return validate_specs(args.paths)


def default_cache_dir():
    """The store a plain ``pytest --audit`` run in this folder uses: $ROBUSTAUDIT_CACHE_DIR, else
    pytest's cache dir here (``.pytest_cache/d/robustaudit-store``)."""
    import os
    from pathlib import Path

    from .store import default_store_dir

    env = os.environ.get("ROBUSTAUDIT_CACHE_DIR")
    return Path(env).expanduser() if env else default_store_dir(Path.cwd())


def validate_specs(paths: list[str]) -> int:
    import pytest

    # this package is imported before pytest starts, so pytest cannot rewrite its asserts: say nothing of it
    argv = ["--collect-only", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors",
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    for path in paths:
        argv += ["--audit", path]
    code = pytest.main(argv)
    if code == pytest.ExitCode.OK:
        print(f"robustaudit: specs valid ({', '.join(paths)})")
        return 0
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print(f"robustaudit: no audit spec found under {', '.join(paths)}", file=sys.stderr)
        return 1
    if code == pytest.ExitCode.USAGE_ERROR:
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
