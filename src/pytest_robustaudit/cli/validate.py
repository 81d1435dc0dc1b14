"""``python -m pytest_robustaudit validate PATH...``: check audit specs without running them (pre-commit, CI).

Validation is pytest's own collection of the specs, so a conftest.py that registers metrics or model
sources is honoured exactly as in a real run; but pytest's terminal output is switched off and every
line is ours: a path that does not exist (``validate audit/``: did you mean ``audits/``?), a file that
is not a spec (``validate README.md``), each spec's problems, a notice (random weights).

Unlike collection in a run, ``validate`` always knows the models: each timm and open_clip architecture
is built without weights on the meta device (no network, no download), or read from the store where an
earlier run kept it (``models/architecture.py``), so an unknown model name, a layer the model does not
have and a head metric on a layer the head does not read are errors here.  A user's factory is called
only with ``--factories``.  Exit status 0 (every spec valid), 1 (a spec is invalid, or none found), 2
(a usage error: a path that does not exist, a file that is not a spec).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

SPEC_SUFFIXES = (".yaml", ".yml")
PREFIX = "robustaudit validate:"


def usage_problems(paths: list[str]) -> list[str]:
    """What is wrong with the paths themselves, in our words (empty: they can be validated)."""
    from ..registry import suggest

    problems = []
    for text in paths:
        path = Path(text)
        if not path.exists():
            parent = path.parent if str(path.parent) else Path(".")
            try:
                siblings = [p.name + ("/" if p.is_dir() else "") for p in parent.iterdir()
                            if p.is_dir() or p.suffix in SPEC_SUFFIXES]
            except OSError:
                siblings = []
            hint = suggest(path.name + ("/" if text.endswith("/") else ""), siblings)
            problems.append(f"{text}: no such file or folder.{hint}")
        elif path.is_file() and path.suffix not in SPEC_SUFFIXES:
            problems.append(f"{text}: not an audit spec (specs are YAML files ending in .yaml or .yml); "
                            "give a spec file or a folder of specs")
    return problems


def validate_specs(paths: list[str], plan: bool = False, factories: bool = False, cache_dir: Any = None,
                   out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Validate the specs under ``paths``; print every problem; return the exit status (module docstring)."""
    from ..plugin.validate import USAGE_ERROR, collect_specs

    out, err = out or sys.stdout, err or sys.stderr
    problems = usage_problems(paths)
    if problems:
        for problem in problems:
            print(f"{PREFIX} {problem}", file=err)
        return 2
    collected = collect_specs(paths, factories, cache_dir)
    if collected.code == USAGE_ERROR and collected.config is None:
        print(f"{PREFIX} pytest could not start (above): a conftest.py or an ini file here is broken", file=err)
        return 1
    if collected.code == USAGE_ERROR:
        return 2
    return report(collected, paths, plan, out, err)


def report(collector: Any, paths: list[str], plan: bool, out: TextIO, err: TextIO) -> int:
    """Print each spec's verdict (its problems in full), notices and, with ``plan``, its plan."""
    from ..audit.notices import spec_notices
    from ..plugin.state import spec_key

    if not collector.failed and not collector.files:
        print(f"{PREFIX} no audit spec found under {', '.join(paths)} (specs are .yaml or .yml files)",
              file=err)
        return 1
    specs = collector.specs
    for path, text in collector.failed.items():
        print(f"{PREFIX} {path}: invalid\n{text}", file=out)
    for path in collector.files:
        spec = specs.get(spec_key(path))
        if spec is None:   # a relation file
            print(f"{PREFIX} {path}: valid (relation check)", file=out)
            continue
        print(f"{PREFIX} {path}: valid ({len(spec.checks)} check{'s' if len(spec.checks) != 1 else ''} on "
              f"{len(spec.layers)} layer{'s' if len(spec.layers) != 1 else ''})", file=out)
        for notice in spec_notices(spec):
            print(f"{PREFIX} notice: {path}: {notice}", file=out)
        if plan:
            from ..plugin.plan_view import plan_lines

            for line in plan_lines(collector.config, spec):
                print(f"robustaudit plan: {line}", file=out)
    for label, why in collector.unknown.items():
        print(f"{PREFIX} notice: the layers of {label} were not checked (its architecture could not be built "
              f"without weights: {why}); the audit checks them when it runs", file=out)
    if collector.failed:
        print(f"{PREFIX} {len(collector.failed)} of {len(collector.failed) + len(collector.files)} spec(s) invalid",
              file=out)
        return 1
    print(f"robustaudit: specs valid ({', '.join(paths)})", file=out)
    return 0
