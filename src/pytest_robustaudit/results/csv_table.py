"""The record as a flat table (CSV): one row per audit × layer × metric × parameters.

For the tools people load results into (pandas, a spreadsheet, a tracker): ``--audit-csv PATH``, ``merge
--csv PATH`` and ``diff`` write it.  The JSON record stays the one complete serialiser
(``results/record.py``); this is a view of its values, written from the same :class:`~.AuditResult` objects.
Free of pytest.  Columns: :data:`RECORD_COLUMNS`, documented in docs/report.md#the-csv-table.

How rows line up.  A layer's ``metrics`` hold each planned metric at its *default* parameters, without
naming them; a check holds its metric at the parameters it ran at, every one of them named (the spec
fills in the defaults).  So each layer value gets the metric's default parameters from the metric
registry, and a check whose ``(layer, metric, params)`` equals them adds its verdict to that row; a check
at other parameters (``outlier_count`` at ``factor: 100``) is a row of its own, beside the default one.
A metric the registry does not know (a plugin's, not loaded where the table is written) has ``""`` for
its parameters: its checks then stand in rows of their own.  Every row is keyed by
``(audit, spec_path, layer, metric, params)``.

Numbers are written so that they read back as the very same float64: Python's shortest round-trip
``repr`` (17 significant digits where needed), and ``nan``, ``inf``, ``-inf`` for the non-finite ones
(what ``float()`` and ``pandas.read_csv`` read as floats).  An empty cell means *absent* (no bound, no
interval, an unchecked value's status), never an undefined number: that is ``nan``.

:func:`write_table` is the generic writer (any columns, rows as mappings): ``diff`` writes
:data:`RECORD_COLUMNS` plus its own columns with it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..atomic import write_text_atomic
from . import AuditResult, CheckOutcome

#: the columns of the record's table, in order (docs/report.md#the-csv-table says what each holds)
RECORD_COLUMNS = (
    "label", "created", "audit", "spec_path", "model", "fingerprint", "n_images",
    "layer", "metric", "params", "value", "undefined_reason", "version",
    "interval_low", "interval_high", "interval_level", "interval_sided", "interval_method",
    "status", "basis", "min", "max", "reference", "min_delta", "max_delta", "confidence",
    "difference_low", "difference_high", "nodeid",
)

#: ``params`` of a value whose metric the registry does not know (its default parameters are not recorded)
UNKNOWN_PARAMS = ""


def params_json(params: Mapping[str, Any]) -> str:
    """Parameters as the ``params`` cell: compact JSON, keys sorted, non-finite floats tagged as in the
    record (``{"$float": "NaN"}``), so equal parameters give equal cells and rows line up across runs."""
    from .record import _free_out

    return json.dumps(_free_out(dict(params)), sort_keys=True, allow_nan=False, ensure_ascii=False,
                      separators=(",", ":"))


def format_cell(value: Any) -> str:
    """One cell: ``""`` for None (absent); floats as their shortest round-trip ``repr`` (``nan``, ``inf``,
    ``-inf`` when not finite); integers as such; objects and lists as compact JSON with sorted keys."""
    import numpy as np

    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))   # 'nan', 'inf', '-inf' for the non-finite ones
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (dict, list, tuple)):
        from .record import _free_out

        return json.dumps(_free_out(value), sort_keys=True, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def render_table(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """The CSV text: a header row of ``columns``, then one line per row (a missing key is an empty
    cell).  A row with a key that is not a column raises ValueError: a column would be lost silently."""
    columns = list(columns)
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns named twice: {sorted({c for c in columns if columns.count(c) > 1})}")
    known = set(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")   # "\n": the text is written as is (no "\r\r\n" on Windows)
    writer.writerow(columns)
    for index, row in enumerate(rows):
        extra = [k for k in row if k not in known]
        if extra:
            raise ValueError(f"row {index} has keys that are not columns: {', '.join(map(str, extra))}")
        writer.writerow([format_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def write_table(path: os.PathLike | str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write :func:`render_table` to ``path`` as UTF-8, atomically (parents created); returns the path."""
    return write_text_atomic(path, render_table(columns, rows))


def record_rows(results: Iterable[AuditResult], run_info: Mapping[str, Any] | None = None,
                metrics: Any = None) -> list[dict[str, Any]]:
    """The rows of the record's table (keys: :data:`RECORD_COLUMNS`), audits and layers in record order.

    ``run_info``: the record's ``run`` (its ``label`` and ``created``); ``metrics``: the metric registry
    that says each metric's default parameters (None: the built-ins and installed plugins', as
    ``merge`` reads them)."""
    run_info = run_info or {}
    if metrics is None:
        from ..registries import standalone

        metrics = standalone().metrics
    run = {"label": str(run_info.get("label", "") or ""), "created": str(run_info.get("created", "") or "")}
    rows: list[dict[str, Any]] = []
    for result in results:
        rows.extend(_audit_rows(result, run, metrics))
    return rows


def write_record_csv(results: Iterable[AuditResult], path: os.PathLike | str,
                     run_info: Mapping[str, Any] | None = None, metrics: Any = None) -> Path:
    """The record's table (:func:`record_rows`) written to ``path``; returns the path."""
    return write_table(path, RECORD_COLUMNS, record_rows(results, run_info, metrics))


def _default_params(metrics: Any, name: str) -> str:
    try:
        return params_json(metrics.get(name).defaults())
    except Exception:  # noqa: BLE001 - unknown to this registry (a plugin's metric not loaded here)
        return UNKNOWN_PARAMS


def _audit_rows(result: AuditResult, run: dict[str, str], metrics: Any) -> list[dict[str, Any]]:
    audit = {**run, "audit": result.name, "spec_path": result.spec_path, "model": result.model,
             "fingerprint": result.fingerprint, "n_images": result.n_images}
    checks: dict[tuple[str, str, str], list[CheckOutcome]] = {}
    for check in result.checks:
        checks.setdefault((check.layer, check.metric, params_json(check.params)), []).append(check)
    used: set[tuple[str, str, str]] = set()
    rows: list[dict[str, Any]] = []
    for layer_name, layer in result.layers.items():
        for metric, measured in layer.metrics.items():
            key = (layer_name, metric, _default_params(metrics, metric))
            value = {**audit, "layer": layer_name, "metric": metric, "params": key[2], "value": measured.value,
                     "undefined_reason": measured.undefined_reason, "version": measured.version,
                     **_interval_cells("interval", layer.intervals.get(metric))}
            if key in checks:
                used.add(key)
                rows.extend({**value, **_check_cells(check, layer.intervals.get(metric))} for check in checks[key])
            else:
                rows.append(value)
            for other, at in checks.items():   # the same metric at other parameters, beside its default row
                if other[:2] == key[:2] and other not in used:
                    used.add(other)
                    rows.extend(_check_row(audit, check, measured.version) for check in at)
    for key, at in checks.items():   # checks of a layer or metric the layers do not hold
        if key not in used:
            rows.extend(_check_row(audit, check, None) for check in at)
    return rows


def _check_row(audit: dict[str, Any], check: CheckOutcome, version: int | None) -> dict[str, Any]:
    """A check's own row: its value at its parameters (no layer value holds them)."""
    return {**audit, "layer": check.layer, "metric": check.metric, "params": params_json(check.params),
            "value": check.value, "undefined_reason": "", "version": version, **_check_cells(check, None)}


def _check_cells(check: CheckOutcome, layer_interval: Any) -> dict[str, Any]:
    """What a check adds to its value's row.  The interval columns keep the layer's two-sided interval
    when there is one (the same in checked and unchecked runs); else the check's (``interval_sided``)."""
    cells = {"status": check.record_status, "basis": check.basis, "min": check.min, "max": check.max,
             "reference": check.reference, "min_delta": check.min_delta, "max_delta": check.max_delta,
             "confidence": check.confidence, "nodeid": check.nodeid,
             "difference_low": _end(check.difference, "low"), "difference_high": _end(check.difference, "high")}
    if layer_interval is None:
        cells.update(_interval_cells("interval", check.interval))
    return cells


def _end(interval: Any, which: str) -> float | None:
    return None if interval is None else float(getattr(interval, which))


def _interval_cells(prefix: str, interval: Any) -> dict[str, Any]:
    if interval is None:
        return {}
    return {f"{prefix}_low": float(interval.low), f"{prefix}_high": float(interval.high),
            f"{prefix}_level": float(interval.level), f"{prefix}_sided": interval.sided,
            f"{prefix}_method": interval.method}


def read_float(cell: str) -> float | None:
    """A numeric cell read back: None for an empty cell (absent), else ``float(cell)`` (``nan``, ``inf``
    included): the exact float64 that was written."""
    return None if cell == "" else float(cell)


__all__ = ["RECORD_COLUMNS", "UNKNOWN_PARAMS", "format_cell", "params_json", "read_float", "record_rows",
           "render_table", "write_record_csv", "write_table"]
