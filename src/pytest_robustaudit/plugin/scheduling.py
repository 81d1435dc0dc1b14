"""The pytest-xdist scheduler that keeps each audit spec's items on one worker.

A spec's checks share one extraction: split over two workers, the model would be loaded and run
twice.  pytest-xdist's ``loadgroup`` would do it through the ``xdist_group`` marker, but with
pytest 9.2 and pytest-xdist 3.8 it does not keep the items together (xdist renames a node-id
attribute that pytest no longer reads), so the plugin chooses the scheduling itself through
``pytest_xdist_make_scheduler``: a spec file is one work unit, every other test is a unit of its
own (as under ``--dist load``), and a ``loadgroup`` group of ordinary tests stays one unit.
Imported only when pytest-xdist is active.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from xdist.scheduler import LoadScopeScheduling

from .state import SPEC_SUFFIXES


def work_unit(nodeid: str) -> str:
    """The scheduling unit of a node id: its spec file for audit items, else the test itself
    (or its ``@group`` under ``--dist loadgroup``)."""
    base, at, group = nodeid.partition("@")
    file_part = base.split("::", 1)[0]
    if PurePosixPath(file_part).suffix in SPEC_SUFFIXES:
        return file_part
    return f"@{group}" if at else nodeid


class SpecScheduling(LoadScopeScheduling):
    """``LoadScopeScheduling`` whose scope is :func:`work_unit`."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)
