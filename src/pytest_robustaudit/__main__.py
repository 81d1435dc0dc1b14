"""``python -m pytest_robustaudit validate PATH...``: check audit specs without running them.

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
    args = parser.parse_args(argv)
    return validate_specs(args.paths)


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
