"""Analyse: from measured inputs to values, intervals and verdicts, without running a model.

:mod:`.intervals` gives every metric's confidence interval from the stored rows, :mod:`.checks` turns a
value, its interval and a bound into a pass/fail outcome.  The metrics themselves live in
:mod:`..metrics`, one module per analysis.
"""
