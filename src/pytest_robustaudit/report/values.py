"""What every output shows beside a verdict, decided once: the value checked, with its parameters.

A metric computed at its default parameters (the per-layer tables) and the same metric checked at
other parameters (``outlier_count: {factor: 100}``) are different numbers.  The HTML page, the
terminal table and the Markdown summary all take their cells from here, so none of them can show
the default value beside the verdict of another one, nor a tick beside a value nobody checked.
Free of pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..analyse.checks import format_number, params_label, unmeasured_reason, verdict_text
from ..results import AuditResult, CheckOutcome

#: a check's mark by status; "?" is a check whose interval straddles a bound (neither ✓ nor ✗: not settled)
MARKS = {"pass": "✓", "fail": "✗", "inconclusive": "?", "skip": "–"}


@dataclass(frozen=True)
class ShownValue:
    """One value in a summary cell: the number, its parameters ("" when it has none), and the verdict
    of the check it was computed for ("" when no check used it: no mark then)."""

    value: float
    params: str
    status: str = ""
    check: CheckOutcome | None = None
    #: the value's confidence interval (metrics/bootstrap.py Interval) when it has one, else None
    interval: Any = None

    @property
    def text(self) -> str:
        return format_number(self.value)

    @property
    def interval_text(self) -> str:
        """``[13.9, 15.2]`` ("" without an interval): what the summaries show after the value."""
        iv = self.interval
        if iv is None or not getattr(iv, "has_interval", False):
            return ""
        sided = getattr(iv, "sided", "two-sided")
        side = f" ({iv.level:.0%} one-sided)" if sided in ("lower", "upper") else ""
        return f"[{format_number(iv.low)}, {format_number(iv.high)}]{side}{uninformative_mark(iv)}"

    def plain(self, marks: dict[str, str] = MARKS, intervals: bool = True) -> str:
        """``0 [0, 1] ✓ (factor=100)``, ``1 (factor=10)``, ``20.59 [18.2, 23.1] ✗``, ``3.02``."""
        mark = f" {marks[self.status]}" if self.status else ""
        shown = f" {self.interval_text}" if intervals and self.interval_text else ""
        return f"{self.text}{shown}{mark}" + (f" ({self.params})" if self.params else "")


def uninformative_mark(iv: Any) -> str:
    """`` (uninformative at 11 images)`` beside an interval that says little at its n (analyse/domain.py),
    else "": every output that shows an interval's ends shows this beside them."""
    return f" (uninformative at {iv.n} images)" if getattr(iv, "uninformative", "") else ""


#: what every summary's count of checks means, said in its header (terminal table, Markdown)
PASSED_HEADER = "passed/total"


def passed_of_total(counts: dict[str, int]) -> str:
    """``1/4`` (checks passed of all checks), then ``, 1 inconclusive`` and ``, 1 skipped`` when any: the
    cell of :data:`PASSED_HEADER` in the terminal table and the Markdown summary, one meaning for both."""
    total = sum(counts.values())
    extra = "".join(f", {counts[k]} {word}" for k, word in (("inconclusive", "inconclusive"), ("skip", "skipped"))
                    if counts.get(k))
    return f"{counts['pass']}/{total}{extra}"


def defaults_of(metric: Any) -> dict[str, Any]:
    return metric.defaults() if metric is not None and hasattr(metric, "defaults") else {}


def checks_of(result: AuditResult, layer: str, metric: str) -> list[CheckOutcome]:
    """The checks of ``metric`` on ``layer`` that were judged (skipped ones have no value)."""
    return [c for c in result.checks if c.layer == layer and c.metric == metric and not c.skip_reason]


def shown_values(result: AuditResult, layer: str, metric: str, declared: Any = None) -> list[ShownValue]:
    """What a summary cell of ``metric`` on ``layer`` shows: each checked value with its verdict and
    parameters; when the metric is not checked there, its default-parameter value without a mark."""
    checked = checks_of(result, layer, metric)
    layer_result = result.layers.get(layer)
    default = layer_result.intervals.get(metric) if layer_result is not None else None
    if checked:
        return [ShownValue(c.value, cell_params(c.params), c.status, c, _two_sided(c, default, declared))
                for c in checked]
    found = layer_result.metrics.get(metric) if layer_result is not None else None
    if found is None:
        return []
    return [ShownValue(found.value, cell_params(defaults_of(declared)), interval=default)]


def cell_params(params: dict[str, Any]) -> str:
    """:func:`~..checks.params_label` for a summary cell, without list-valued parameters of more than four
    items (a pruning grid): one column must not take the terminal's width; the failure messages, the
    report's tables and the record keep every value."""
    return params_label({key: value for key, value in params.items()
                         if not (isinstance(value, str) and value.count(",") >= 4)})


def _two_sided(check: CheckOutcome, default: Any, declared: Any) -> Any:
    """The interval a summary shows beside a checked value: the one the verdict read when the check gated
    on its interval (``confidence``: one-sided for a single bound, so the cell and the failure line agree);
    else the two-sided one at the run's level (the layer's, when the check ran at the default
    parameters), else the one the check itself saw."""
    if check.basis == "interval" and check.interval is not None:
        return check.interval
    if default is not None and is_default(check, declared):
        return default
    return check.interval


def is_default(check: CheckOutcome, declared: Any) -> bool:
    """Whether ``check`` ran at the parameters the per-layer tables compute (the metric's defaults)."""
    defaults = defaults_of(declared)
    return all(defaults.get(k, v) == v for k, v in check.params.items())


def rerun_command(nodeid: str) -> str:
    """``pytest --audit audits/x.yaml 'audits/x.yaml::representation::kurtosis_mean'``: the command that
    re-runs one check, from the rootdir (node ids are relative to it); quoted for a POSIX shell, since an
    item name such as ``outlier_count[factor=100]`` is a glob.  "" without a node id."""
    import shlex

    if not nodeid:
        return ""
    return f"pytest --audit {shlex.quote(nodeid.split('::', 1)[0])} {shlex.quote(nodeid)}"


def check_label(check: CheckOutcome) -> str:
    """``outlier_count (factor=100)``: the metric with every parameter it was computed at."""
    params = params_label(check.params)
    return check.metric + (f" ({params})" if params else "")


def check_verdict(check: CheckOutcome) -> str:
    """The value against its bounds, plainly: ``20.59 > max 15, +37%``; ``not run: …`` when skipped."""
    if check.skip_reason:
        return "not run"
    if check.basis == "unmeasured":      # no number to hold against the bounds: why, not a bare "undefined"
        reason = unmeasured_reason(check.message)
        return f"{format_number(check.value)}: {reason}" if reason else format_number(check.value)
    if check.status == "inconclusive":   # the value may sit inside the bounds: its interval does not
        from ..analyse.checks import bound_text

        iv = check.interval
        level = f" {iv.level:.0%}" if iv is not None and getattr(iv, "has_interval", False) else ""
        return f"{format_number(check.value)}: INCONCLUSIVE, the{level} interval straddles {bound_text(check.min, check.max)}"
    return verdict_text(check.value, check.min, check.max)


def left_out(deselected: int, not_run: int) -> str:
    """``3 checks deselected, 1 check not run`` ("" when none): what every output says it leaves out."""
    parts = []
    if deselected:
        parts.append(f"{deselected} check{'s' if deselected != 1 else ''} deselected")
    if not_run:
        parts.append(f"{not_run} check{'s' if not_run != 1 else ''} not run")
    return ", ".join(parts)


def not_applicable(result: Any, layer: str, metric: str) -> bool:
    """Whether ``metric`` does not apply on ``layer`` of ``result`` (e.g. accuracy with no head): shown as n/a."""
    from ..metrics.types import NOT_APPLICABLE

    found = result.layers[layer].metrics.get(metric) if layer in result.layers else None
    return found is not None and found.undefined_reason.startswith(NOT_APPLICABLE)


def applying(metrics: Iterable[Any], results: Iterable[Any]) -> list[Any]:
    """The ``metrics`` computed and applicable somewhere in ``results`` (a summary column that would read
    n/a or nothing on every row, such as accuracy in a run without labels or directions no audit's plan
    computed, is left out; all of them when there is no result)."""
    results = list(results)
    if not results:
        return list(metrics)
    return [m for m in metrics
            if any(m.name in r.layers[layer].metrics and not not_applicable(r, layer, m.name)
                   for r in results for layer in r.layers)]
