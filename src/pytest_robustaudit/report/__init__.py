"""Outputs for people: the HTML page, its plots, the terminal table and the Markdown summary.

Each is a pure function of typed results (:mod:`~pytest_robustaudit.results`) and the metrics'
own declarations; none imports pytest.

* :mod:`.page`: :func:`render_report` / :func:`write_report` (Jinja, autoescaped, inline CSS and SVG).
* :mod:`.svg`: the inline plots.
* :mod:`.table`: the terminal table.
* :mod:`.markdown`: the Markdown summary for CI job pages.
"""

from __future__ import annotations

from .page import render_report, write_report

__all__ = ["render_report", "write_report"]
