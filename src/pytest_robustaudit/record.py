"""The versioned JSON record of an audit run: the one serialiser of :class:`~.results.AuditResult`.

The HTML report, ``--audit-json``, baselines (``--audit-save-baseline``) and the transfer of results
from pytest-xdist workers to the controller all go through this module.  Schema (every field):
docs/report.md.  Free of pytest.

Numbers:

* Scalars (metric values, check values and bounds, seconds) are stored exactly: Python's shortest
  round-trip ``repr`` of the float64.
* Arrays (activation profile, per-image kurtosis, per-feature mean and variance) are rounded to
  :data:`ARRAY_DIGITS` significant digits by default (relative error ≤ 5e-8, far below any bound
  anyone sets), which halves the file; ``array_digits=None`` keeps them exact.
* JSON has no NaN or infinity.  In typed float fields and arrays they are the strings ``"NaN"``,
  ``"Infinity"`` and ``"-Infinity"`` (what ``Number()`` in JavaScript and ``float()`` in Python
  read back).  Inside free-form values (``details``, ``provenance``, ``params``) they are tagged
  objects ``{"$float": "NaN"}`` so that a real string ``"NaN"`` stays a string.  ``null`` means
  "absent" (no bound, no reference), never "undefined number".
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import AuditError
from .metrics import MetricValue
from .results import AuditResult, CheckOutcome, LayerResult
from .stats import LayerStats

#: identifies a pytest-robustaudit record among other JSON files
FORMAT = "pytest-robustaudit/record"
#: bumped on any change that an older reader could misread; readers refuse newer versions
SCHEMA_VERSION = 1
#: significant digits kept for array elements by default (None = exact)
ARRAY_DIGITS: int | None = 7

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class RecordError(AuditError):
    """A record file that cannot be read: missing, not JSON, not a record, or a newer schema."""


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------


def _float_out(value: float | None) -> float | str | None:
    if value is None:
        return None
    value = float(value)
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _array_out(values: np.ndarray, digits: int | None) -> list:
    arr = np.asarray(values, dtype=np.float64).ravel()
    out: list = []
    for v in arr.tolist():
        if not math.isfinite(v):
            out.append(_float_out(v))
        elif digits is None or v == 0.0:
            out.append(v)
        else:
            out.append(float(f"{v:.{digits}g}"))
    return out


def _free_out(value: Any) -> Any:
    """A free-form value (details, provenance, params) as plain JSON; non-finite floats tagged."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else {"$float": _float_out(v)}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return [_free_out(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): _free_out(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_free_out(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _stats_out(stats: LayerStats, digits: int | None) -> dict[str, Any]:
    return {
        "dim": int(stats.dim),
        "n_images": int(stats.n_images),
        "n_nonfinite": int(stats.n_nonfinite),
        "rotation_seed": int(stats.rotation_seed),
        "notes": list(stats.notes),
        "kurtosis": _array_out(stats.kurtosis, digits),
        "rotated_kurtosis": _array_out(stats.rotated_kurtosis, digits),
        "profile": _array_out(stats.profile, digits),
        "feature_mean": _array_out(stats.feature_mean, digits),
        "feature_var": _array_out(stats.feature_var, digits),
    }


def _check_out(c: CheckOutcome) -> dict[str, Any]:
    return {
        "metric": c.metric, "layer": c.layer, "value": _float_out(c.value),
        "min": _float_out(c.min), "max": _float_out(c.max), "passed": bool(c.passed),
        "skip_reason": c.skip_reason, "reference": _float_out(c.reference),
        "params": _free_out(c.params), "details": _free_out(c.details), "message": c.message,
    }


def result_to_dict(result: AuditResult, array_digits: int | None = ARRAY_DIGITS) -> dict[str, Any]:
    """One audit as plain JSON data (schema: docs/report.md)."""
    return {
        "name": result.name,
        "spec_path": os.fspath(result.spec_path),
        "model": result.model,
        "source": result.source,
        "fingerprint": result.fingerprint,
        "device": result.device,
        "precision": result.precision,
        "batch_size": int(result.batch_size),
        "data_path": os.fspath(result.data_path),
        "n_images": int(result.n_images),
        "n_found": int(result.n_found),
        "skipped": [{"path": os.fspath(s.path), "reason": s.reason} for s in result.skipped],
        "seconds": _float_out(result.seconds),
        "passed": bool(result.passed),
        "provenance": _free_out(result.provenance),
        "layers": [
            {
                "name": name,
                "metrics": {m: {"value": _float_out(v.value), "undefined_reason": v.undefined_reason,
                                "details": _free_out(v.details)} for m, v in layer.metrics.items()},
                "stats": _stats_out(layer.stats, array_digits),
            }
            for name, layer in result.layers.items()
        ],
        "checks": [_check_out(c) for c in result.checks],
    }


def default_run_info() -> dict[str, Any]:
    """What every record says about the run that wrote it."""
    from importlib import metadata

    try:
        version = metadata.version("pytest-robustaudit")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        version = "unknown"
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "robustaudit_version": version,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def record_to_dict(results: Iterable[AuditResult], run_info: dict[str, Any] | None = None,
                   array_digits: int | None = ARRAY_DIGITS) -> dict[str, Any]:
    """The whole record: header, run information (defaults filled in) and every audit."""
    run = {**default_run_info(), **(run_info or {})}
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "run": _free_out(run),
        "audits": [result_to_dict(r, array_digits) for r in results],
    }


def _pretty(value: Any, depth: int = 0) -> str:
    """JSON with one key per line but every array of numbers/strings on a single line (diffable, compact)."""
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict) and value:
        items = ",\n".join(f"{inner}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, depth + 1)}" for k, v in value.items())
        return "{\n" + items + "\n" + pad + "}"
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _pretty(v, depth + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":") if isinstance(value, list) else None)


def dumps(results: Iterable[AuditResult], run_info: dict[str, Any] | None = None,
          array_digits: int | None = ARRAY_DIGITS, indent: int | None = None) -> str:
    """The record as JSON text: compact by default, ``indent`` (any int) for the file layout."""
    data = record_to_dict(results, run_info, array_digits)
    if indent is None:
        return json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return _pretty(data)


def write_record(results: Iterable[AuditResult], path: Path | str, run_info: dict[str, Any] | None = None,
                 array_digits: int | None = ARRAY_DIGITS) -> Path:
    """Write the record to ``path`` atomically (parents created); returns the path."""
    path = Path(path)
    text = dumps(results, run_info, array_digits, indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: os.replace is atomic
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------


class _Malformed(Exception):
    """Internal: a located structural problem (``where`` is a JSON path like ``audits[0].layers``)."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}")


def _get(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise _Malformed(where, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise _Malformed(where, f"missing '{key}'")
    return obj[key]


def _float_in(value: Any, where: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise _Malformed(where, f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    raise _Malformed(where, f"expected a number{' or null' if optional else ''}, got {value!r}")


def _int_in(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed(where, f"expected an integer, got {value!r}")
    return value


def _str_in(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(where, f"expected a string, got {value!r}")
    return value


def _array_in(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, list):
        raise _Malformed(where, f"expected an array, got {type(value).__name__}")
    return np.array([_float_in(v, f"{where}[{i}]") for i, v in enumerate(value)], dtype=np.float64)


def _free_in(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$float"} and value["$float"] in _NONFINITE:
            return _NONFINITE[value["$float"]]
        return {k: _free_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_free_in(v) for v in value]
    return value


def _dict_in(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _Malformed(where, f"expected an object, got {type(value).__name__}")
    return _free_in(value)


def _layer_in(obj: Any, where: str) -> LayerResult:
    name = _str_in(_get(obj, "name", where), f"{where}.name")
    s = _get(obj, "stats", where)
    sw = f"{where}.stats"
    stats = LayerStats(
        layer=name,
        dim=_int_in(_get(s, "dim", sw), f"{sw}.dim"),
        n_images=_int_in(_get(s, "n_images", sw), f"{sw}.n_images"),
        n_nonfinite=_int_in(_get(s, "n_nonfinite", sw), f"{sw}.n_nonfinite"),
        kurtosis=_array_in(_get(s, "kurtosis", sw), f"{sw}.kurtosis"),
        rotated_kurtosis=_array_in(_get(s, "rotated_kurtosis", sw), f"{sw}.rotated_kurtosis"),
        profile=_array_in(_get(s, "profile", sw), f"{sw}.profile"),
        feature_mean=_array_in(_get(s, "feature_mean", sw), f"{sw}.feature_mean"),
        feature_var=_array_in(_get(s, "feature_var", sw), f"{sw}.feature_var"),
        rotation_seed=_int_in(s.get("rotation_seed", 0), f"{sw}.rotation_seed"),
        notes=[_str_in(n, f"{sw}.notes") for n in s.get("notes", [])],
    )
    metrics: dict[str, MetricValue] = {}
    for mname, m in _dict_in(_get(obj, "metrics", where), f"{where}.metrics").items():
        mw = f"{where}.metrics.{mname}"
        metrics[mname] = MetricValue(_float_in(_get(m, "value", mw), f"{mw}.value"),
                                     _dict_in(m.get("details", {}), f"{mw}.details"),
                                     _str_in(m.get("undefined_reason", ""), f"{mw}.undefined_reason"))
    return LayerResult(name, stats, metrics)


def _check_in(obj: Any, where: str) -> CheckOutcome:
    passed = _get(obj, "passed", where)
    if not isinstance(passed, bool):
        raise _Malformed(f"{where}.passed", f"expected true or false, got {passed!r}")
    return CheckOutcome(
        metric=_str_in(_get(obj, "metric", where), f"{where}.metric"),
        layer=_str_in(_get(obj, "layer", where), f"{where}.layer"),
        value=_float_in(_get(obj, "value", where), f"{where}.value"),
        min=_float_in(obj.get("min"), f"{where}.min", optional=True),
        max=_float_in(obj.get("max"), f"{where}.max", optional=True),
        passed=passed,
        message=_str_in(obj.get("message", ""), f"{where}.message"),
        params=_dict_in(obj.get("params", {}), f"{where}.params"),
        details=_dict_in(obj.get("details", {}), f"{where}.details"),
        reference=_float_in(obj.get("reference"), f"{where}.reference", optional=True),
        skip_reason=_str_in(obj.get("skip_reason", ""), f"{where}.skip_reason"),
    )


def _result_in(obj: Any, where: str) -> AuditResult:
    from .data import SkippedImage

    layers_raw = _get(obj, "layers", where)
    if not isinstance(layers_raw, list):
        raise _Malformed(f"{where}.layers", "expected an array")
    layers = {}
    for i, raw in enumerate(layers_raw):
        layer = _layer_in(raw, f"{where}.layers[{i}]")
        layers[layer.layer] = layer
    checks_raw = _get(obj, "checks", where)
    if not isinstance(checks_raw, list):
        raise _Malformed(f"{where}.checks", "expected an array")
    skipped_raw = obj.get("skipped", [])
    if not isinstance(skipped_raw, list):
        raise _Malformed(f"{where}.skipped", "expected an array")
    skipped = [SkippedImage(Path(_str_in(_get(s, "path", f"{where}.skipped[{i}]"), f"{where}.skipped[{i}].path")),
                            _str_in(_get(s, "reason", f"{where}.skipped[{i}]"), f"{where}.skipped[{i}].reason"))
               for i, s in enumerate(skipped_raw)]
    return AuditResult(
        spec_path=Path(_str_in(_get(obj, "spec_path", where), f"{where}.spec_path")),
        name=_str_in(_get(obj, "name", where), f"{where}.name"),
        model=_str_in(_get(obj, "model", where), f"{where}.model"),
        source=_str_in(_get(obj, "source", where), f"{where}.source"),
        fingerprint=_str_in(_get(obj, "fingerprint", where), f"{where}.fingerprint"),
        device=_str_in(_get(obj, "device", where), f"{where}.device"),
        precision=_str_in(_get(obj, "precision", where), f"{where}.precision"),
        data_path=Path(_str_in(_get(obj, "data_path", where), f"{where}.data_path")),
        n_images=_int_in(_get(obj, "n_images", where), f"{where}.n_images"),
        n_found=_int_in(_get(obj, "n_found", where), f"{where}.n_found"),
        skipped=skipped,
        seconds=_float_in(_get(obj, "seconds", where), f"{where}.seconds"),
        layers=layers,
        checks=[_check_in(c, f"{where}.checks[{i}]") for i, c in enumerate(checks_raw)],
        batch_size=_int_in(obj.get("batch_size", 0), f"{where}.batch_size"),
        provenance=_dict_in(obj.get("provenance", {}), f"{where}.provenance"),
    )


def result_from_dict(obj: dict[str, Any]) -> AuditResult:
    """Inverse of :func:`result_to_dict`; a malformed dict raises :class:`RecordError` naming the field."""
    try:
        return _result_in(obj, "audit")
    except _Malformed as problem:
        raise RecordError(f"malformed audit record: {problem}") from None


def record_from_dict(data: Any, origin: str = "the record") -> tuple[dict[str, Any], list[AuditResult]]:
    """``(run_info, results)`` of a decoded record; ``origin`` names it in error messages."""
    fix = "regenerate it with pytest --audit ... --audit-json PATH (or --audit-save-baseline)"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RecordError(f"{origin} is not a pytest-robustaudit record (no \"format\": \"{FORMAT}\" at the top); "
                          f"point to a file written by --audit-json or --audit-save-baseline, or {fix}")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordError(f"{origin} has an invalid schema_version {version!r}; {fix}")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{origin} has schema_version {version}, newer than this pytest-robustaudit reads "
                          f"({SCHEMA_VERSION}); upgrade pytest-robustaudit, or {fix}")
    try:
        run = _dict_in(data.get("run", {}), "run")
        audits = _get(data, "audits", "record")
        if not isinstance(audits, list):
            raise _Malformed("audits", "expected an array")
        results = [_result_in(a, f"audits[{i}]") for i, a in enumerate(audits)]
    except _Malformed as problem:
        raise RecordError(f"{origin} is malformed at {problem}; {fix}") from None
    return run, results


def loads(text: str, origin: str = "the record") -> tuple[dict[str, Any], list[AuditResult]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError(f"{origin} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
                          f"regenerate it with pytest --audit ... --audit-json PATH (or --audit-save-baseline)") from None
    return record_from_dict(data, origin)


def read_record(path: Path | str) -> tuple[dict[str, Any], list[AuditResult]]:
    """``(run_info, results)`` from a record file; any problem is a :class:`RecordError` naming ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"record {path} does not exist; write it with pytest --audit ... --audit-json {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"record {path} cannot be read ({error}); check the file") from None
    return loads(text, f"record {path}")
