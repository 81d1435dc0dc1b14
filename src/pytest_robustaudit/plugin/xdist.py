"""pytest-xdist hooks, registered only when xdist is active (``plugin.pytest_configure``).

* The controller schedules a spec's items on one worker (``scheduling.py``), so each spec is
  extracted once whatever ``-n`` is, without the user knowing ``--dist``.  An explicit ``--dist``
  other than the default ``load`` (or ``loadgroup``) is the user's choice and is kept.
* Workers put their results into ``workeroutput`` at the end of their session (``outputs.py``);
  the controller keeps each finished worker's record here, to write one report for the whole run.
"""

from __future__ import annotations

from .outputs import WORKER_KEY
from .state import run_state

#: --dist values under which the plugin chooses the scheduling (load is what a bare -n N means)
TAKEN_OVER = ("load", "loadgroup")


def pytest_xdist_make_scheduler(config, log):
    """Keep each spec on one worker when the run audits specs and the user left --dist at its default."""
    if not run_state(config).auditing or config.getoption("dist", "load") not in TAKEN_OVER:
        return None
    from .scheduling import SpecScheduling

    return SpecScheduling(config, log)


def pytest_testnodedown(node, error) -> None:
    """pytest-xdist (controller): keep the results a finished worker sent."""
    text = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if text:
        run_state(node.config).worker_records.append(text)
