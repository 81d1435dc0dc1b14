"""pytest-xdist hooks, registered only when xdist is active (``plugin.pytest_configure``).

Workers put their results into ``workeroutput`` at the end of their session (``outputs.py``);
the controller keeps each finished worker's record here, to write one report for the whole run.
"""

from __future__ import annotations

from .outputs import WORKER_KEY
from .state import run_state


def pytest_testnodedown(node, error) -> None:
    """pytest-xdist (controller): keep the results a finished worker sent."""
    text = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if text:
        run_state(node.config).worker_records.append(text)


def pytest_configure_node(node) -> None:
    """pytest-xdist (controller): workers refresh store entries made before the controller started."""
    node.workerinput["robustaudit_started"] = run_state(node.config).started
