"""``--audit-plan``: print each collected spec's plan (what it will compute and measure) after collection.

What ``python -m pytest_robustaudit validate --plan`` shows.  A separate option rather than a change to
``--collect-only``, whose output other tools parse.  Building a plan runs nothing: the probe folder is
listed (to know whether it is labelled), no model is built and no image decoded.
"""

from __future__ import annotations

import pytest

from .state import run_state


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if not config.getoption("audit_plan", False):
        return
    state = run_state(config)
    writer = config.get_terminal_writer()
    writer.line()
    for spec in state.audit_specs.values():
        for line in plan_lines(config, spec):
            writer.line(f"robustaudit plan: {line}")


def plan_lines(config: pytest.Config, spec) -> list[str]:
    """The plan of ``spec`` as lines (``validate --plan`` prints them too), or why there is none."""
    from ..errors import AuditError
    from ..plan.plan import build_plan

    state = run_state(config)
    try:
        labelled = None
        if spec.model.source != "activations":
            from ..data import discover

            labelled = any(image.label for image in discover(spec.data).images)
        plan = build_plan(spec, state.registries, state.session.requests,
                          measure_all=bool(config.getoption("audit_save_baseline", False)), labelled=labelled)
    except AuditError as error:
        return [f"{spec.name}: no plan: {error}"]
    return plan.lines()
