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
import socket
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import numpy as np

from ..atomic import write_text_atomic
from ..errors import AuditError
from ..metrics.types import MetricValue
from . import AuditResult, CheckOutcome, LayerResult
from ..metrics.outlier_stats import LayerStats

#: identifies a pytest-robustaudit record among other JSON files
FORMAT = "pytest-robustaudit/record"
#: bumped on any change that an older reader could misread; readers refuse newer versions and read
#: older ones (version 1 had no metric definition versions, so its values read as definition 1, and
#: no ``input_dtype``, so its layers read as float32 activations; versions 1-2 have no intervals;
#: versions 1-3 have no verdict basis nor spec fingerprints: they read as "" and ``merge`` refuses them;
#: nor a plan or phases: they read as {} (every metric they hold); versions 1-4 have no run.relations: they
#: read as none (results/relations.py)
SCHEMA_VERSION = 5   # 2: metric definition versions, input dtype; 3: intervals (layers[].intervals, checks[].interval,
#                      ...); 4: checks[].basis, min_delta, max_delta (what a verdict was read from, so merge decides it
#                      again), audits[].spec_sha256 and, for --audit-shard runs, run.spec_set (which specs, which
#                      content); audits[].plan (what was computed and why, what was not), audits[].phases (seconds
#                      per phase); 5: checks[].margin, run.label, run.history_entry, run.comparison (the change
#                      from a reference release), run.history (the trend series of the run's checks),
#                      run.relations (each relation file's verdict: file, sha256, metric, layer, min_rho,
#                      max_rho, confidence, status, rho, low, high, level, n, models, left_out, message; status
#                      "deferred" under --audit-shard, decided by merge)
#: the largest record file read (a record keeps one 64-character hash per image and layer: 1 GB holds
#: about 15 million of them)
MAX_RECORD_BYTES = 1 << 30
#: significant digits kept for array elements by default (None = exact)
ARRAY_DIGITS: int | None = 7

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class RecordError(AuditError):
    """A record file that cannot be read: missing, not JSON, not a record, or a newer schema."""


# --------------------------------------------------------------------------------------------
# the schema: every plain field of a record object, named once for writing and for reading
# --------------------------------------------------------------------------------------------

_REQUIRED = object()


class _Field(NamedTuple):
    key: str          # the JSON key and the dataclass attribute
    kind: str         # int | str | bool | float | float? (number or null) | path | array | strings | free
    default: Any = _REQUIRED  # what a record without the key reads as; _REQUIRED: the key must be there


_STATS = (  # LayerStats (its ``layer`` is the layer's name)
    _Field("dim", "int"), _Field("n_images", "int"), _Field("n_nonfinite", "int"),
    _Field("rotation_seed", "int", 0), _Field("notes", "strings", []),
    _Field("kurtosis", "array"), _Field("rotated_kurtosis", "array"), _Field("profile", "array"),
    _Field("feature_mean", "array"), _Field("feature_var", "array"), _Field("input_dtype", "str", "float32"),
)
_METRIC = (_Field("value", "float"), _Field("undefined_reason", "str", ""), _Field("details", "free", {}),
           _Field("version", "int", 1))
_CHECK = (
    _Field("metric", "str"), _Field("layer", "str"), _Field("value", "float"),
    _Field("min", "float?", None), _Field("max", "float?", None), _Field("passed", "bool"),
    _Field("skip_reason", "str", ""), _Field("reference", "float?", None),
    _Field("params", "free", {}), _Field("details", "free", {}), _Field("message", "str", ""),
    _Field("why", "str", ""),  # added after schema 1 shipped: optional, so older records still read
    _Field("interval", "interval?", None), _Field("difference", "interval?", None),
    _Field("confidence", "float?", None), _Field("inconclusive", "bool", False),
    _Field("images_needed", "int?", None),
    _Field("basis", "str", ""), _Field("min_delta", "float?", None), _Field("max_delta", "float?", None),
    _Field("nodeid", "str", ""),   # schema 4, optional: "" in records that predate it
    _Field("margin", "float?", None),   # schema 5: null in records that predate it
)
_SKIPPED = (_Field("path", "path"), _Field("reason", "str"))
_RESULT = (  # AuditResult, besides its skipped images, layers and checks
    _Field("name", "str"), _Field("spec_path", "path"), _Field("model", "str"), _Field("source", "str"),
    _Field("fingerprint", "str"), _Field("device", "str"), _Field("precision", "str"),
    _Field("batch_size", "int", 0), _Field("data_path", "path"), _Field("n_images", "int"),
    _Field("n_found", "int"), _Field("seconds", "float"), _Field("provenance", "free", {}),
    _Field("extraction_s", "float", 0.0), _Field("activations", "free", {}), _Field("spec_sha256", "str", ""),
    _Field("plan", "free", {}), _Field("phases", "free", {}),   # schema 4: {} in older records
)


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


_OUT = {
    "int": lambda v, digits: int(v),
    "str": lambda v, digits: str(v),
    "bool": lambda v, digits: bool(v),
    "float": lambda v, digits: _float_out(v),
    "float?": lambda v, digits: _float_out(v),
    "path": lambda v, digits: os.fspath(v),
    "array": _array_out,
    "strings": lambda v, digits: [str(item) for item in v],
    "free": lambda v, digits: _free_out(v),
    "int?": lambda v, digits: None if v is None else int(v),
    "interval?": lambda v, digits: _interval_out(v),
}

_INTERVAL_FLOATS = ("value", "low", "high", "level")


def _interval_out(iv: Any) -> dict[str, Any] | None:
    """An :class:`~.metrics.bootstrap.Interval` as JSON (non-finite ends as "NaN"), or None."""
    if iv is None:
        return None
    out: dict[str, Any] = {k: _float_out(getattr(iv, k)) for k in _INTERVAL_FLOATS}
    out.update(method=iv.method, sided=iv.sided, resamples=int(iv.resamples), n=int(iv.n), exact=bool(iv.exact),
               informational=bool(iv.informational), note=iv.note,
               settle_n=None if iv.settle_n is None else int(iv.settle_n), uninformative=iv.uninformative)
    return out


def _out(obj: Any, fields: tuple[_Field, ...], digits: int | None = None) -> dict[str, Any]:
    return {f.key: _OUT[f.kind](getattr(obj, f.key), digits) for f in fields}


def result_to_dict(result: AuditResult, array_digits: int | None = ARRAY_DIGITS) -> dict[str, Any]:
    """One audit as plain JSON data (schema: docs/report.md)."""
    return {
        **_out(result, _RESULT),
        "passed": bool(result.passed),
        "skipped": [_out(s, _SKIPPED) for s in result.skipped],
        "layers": [
            {"name": name, "metrics": {m: _out(v, _METRIC) for m, v in layer.metrics.items()},
             "intervals": {m: _interval_out(iv) for m, iv in layer.intervals.items()},
             "image_hashes": list(layer.image_hashes),
             "stats": _out(layer.stats, _STATS, array_digits)}
            for name, layer in result.layers.items()
        ],
        # status: derived from passed, inconclusive, basis and skip_reason (schema 4; not read back)
        "checks": [{**_out(c, _CHECK), "status": c.record_status} for c in result.checks],
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
        "host": socket.gethostname(),
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
    return write_text_atomic(path, dumps(results, run_info, array_digits, indent=1) + "\n")


def write_record_data(data: dict[str, Any], path: Path | str) -> Path:
    """Write a record already made by :func:`record_to_dict` (the run hands the same data to the
    ``pytest_robustaudit_record_written`` hook), in the file layout of :func:`write_record`."""
    return write_text_atomic(path, _pretty(data) + "\n")


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------


class _Malformed(Exception):
    """Internal: a located structural problem (``where`` is a JSON path like ``audits[0].layers``)."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}")


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


def _free_in(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$float"} and value["$float"] in _NONFINITE:
            return _NONFINITE[value["$float"]]
        return {k: _free_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_free_in(v) for v in value]
    return value


def _value_in(kind: str, value: Any, where: str) -> Any:
    """A JSON value read as a field of ``kind`` (see :class:`_Field`), or :class:`_Malformed`."""
    if kind in ("float", "float?"):
        return _float_in(value, where, optional=kind == "float?")
    if kind in ("str", "path"):
        if not isinstance(value, str):
            raise _Malformed(where, f"expected a string, got {value!r}")
        return Path(value) if kind == "path" else value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Malformed(where, f"expected an integer, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _Malformed(where, f"expected true or false, got {value!r}")
        return value
    if kind == "int?":
        return None if value is None else _value_in("int", value, where)
    if kind == "interval?":
        return None if value is None else _interval_in(value, where)
    if kind == "free":
        if not isinstance(value, dict):
            raise _Malformed(where, f"expected an object, got {type(value).__name__}")
        return _free_in(value)
    if not isinstance(value, list):
        raise _Malformed(where, f"expected an array, got {type(value).__name__}")
    if kind == "array":
        return np.array([_float_in(v, f"{where}[{i}]") for i, v in enumerate(value)], dtype=np.float64)
    return [_value_in("str", v, f"{where}[{i}]") for i, v in enumerate(value)]  # strings


def _interval_in(value: Any, where: str) -> Any:
    from ..metrics.bootstrap import Interval

    if not isinstance(value, dict):
        raise _Malformed(where, f"expected an interval object, got {type(value).__name__}")
    f = _Fields(value, where)
    floats = {k: f.read(_Field(k, "float")) for k in _INTERVAL_FLOATS}
    return Interval(**floats, method=f.read(_Field("method", "str")), sided=f.read(_Field("sided", "str", "two-sided")),
                    resamples=f.read(_Field("resamples", "int", 0)), n=f.read(_Field("n", "int", 0)),
                    exact=f.read(_Field("exact", "bool", False)), informational=f.read(_Field("informational", "bool", False)),
                    note=f.read(_Field("note", "str", "")), settle_n=f.read(_Field("settle_n", "int?", None)),
                    uninformative=f.read(_Field("uninformative", "str", "")))


class _Fields:
    """One JSON object being decoded; a wrong or missing value raises :class:`_Malformed` located at
    ``where.key``."""

    def __init__(self, obj: Any, where: str):
        if not isinstance(obj, dict):
            raise _Malformed(where, f"expected an object, got {type(obj).__name__}")
        self.obj, self.where = obj, where

    def _at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _raw(self, key: str, default: Any) -> Any:
        if key in self.obj:
            return self.obj[key]
        if default is _REQUIRED:
            raise _Malformed(self.where or "record", f"missing '{key}'")
        return default

    def read(self, field: _Field) -> Any:
        return _value_in(field.kind, self._raw(field.key, field.default), self._at(field.key))

    def object(self, key: str) -> _Fields:
        return _Fields(self._raw(key, _REQUIRED), self._at(key))

    def each(self, key: str, default: Any = _REQUIRED) -> list[_Fields]:
        """The objects of an array, each located as ``key[i]``."""
        items = self._raw(key, default)
        if not isinstance(items, list):
            raise _Malformed(self._at(key), f"expected an array, got {type(items).__name__}")
        return [_Fields(item, f"{self._at(key)}[{i}]") for i, item in enumerate(items)]


def _read_all(f: _Fields, fields: tuple[_Field, ...]) -> dict[str, Any]:
    return {field.key: f.read(field) for field in fields}


def _decode(cls: type, f: _Fields, fields: tuple[_Field, ...], **rest: Any) -> Any:
    return cls(**_read_all(f, fields), **rest)


def _layer_in(f: _Fields) -> LayerResult:
    name = f.read(_Field("name", "str"))
    stats = _decode(LayerStats, f.object("stats"), _STATS, layer=name)
    metrics = f.object("metrics")
    values = {m: _decode(MetricValue, metrics.object(m), _METRIC) for m in metrics.obj}
    intervals = f.read(_Field("intervals", "free", {}))          # schema 1 records have none
    return LayerResult(name, stats, values,
                       intervals={m: _interval_in(iv, f"{f.where}.intervals.{m}") for m, iv in f.obj.get("intervals", {}).items()}
                       if intervals else {},
                       image_hashes=tuple(f.read(_Field("image_hashes", "strings", []))))


def _result_in(f: _Fields) -> AuditResult:
    from ..data.decode import SkippedImage

    layers = [_layer_in(layer) for layer in f.each("layers")]  # the bulk first: a cut-off file says so
    skipped = [_decode(SkippedImage, s, _SKIPPED) for s in f.each("skipped", [])]
    plain = _read_all(f, _RESULT)
    checks = [_decode(CheckOutcome, c, _CHECK) for c in f.each("checks")]
    return AuditResult(**plain, skipped=skipped, layers={layer.layer: layer for layer in layers}, checks=checks)


def result_from_dict(obj: dict[str, Any]) -> AuditResult:
    """Inverse of :func:`result_to_dict`; a malformed dict raises :class:`RecordError` naming the field."""
    try:
        return _result_in(_Fields(obj, "audit"))
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
        top = _Fields(data, "")
        run = top.read(_Field("run", "free", {}))
        results = [_result_in(audit) for audit in top.each("audits")]
    except _Malformed as problem:
        raise RecordError(f"{origin} is malformed at {problem}; {fix}") from None
    return run, results


def loads(text: str, origin: str = "the record") -> tuple[dict[str, Any], list[AuditResult]]:
    from ..files import UnfitFile, parse_json

    fix = "regenerate it with pytest --audit ... --audit-json PATH (or --audit-save-baseline)"
    try:
        data = parse_json(text)
    except UnfitFile as error:
        raise RecordError(f"{origin} {error}, more than any record nests; {fix}") from None
    except json.JSONDecodeError as error:
        raise RecordError(f"{origin} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
                          f"{fix}") from None
    return record_from_dict(data, origin)


def read_record(path: Path | str) -> tuple[dict[str, Any], list[AuditResult]]:
    """``(run_info, results)`` from a record file; any problem is a :class:`RecordError` naming ``path``.

    Only a regular file of at most :data:`MAX_RECORD_BYTES` is read (a FIFO or ``/dev/zero`` is
    refused at once, never waited on or read for ever), nesting at most ``files.MAX_JSON_DEPTH`` levels."""
    from ..files import UnfitFile, read_text

    path = Path(path)
    try:
        text = read_text(path, MAX_RECORD_BYTES)
    except FileNotFoundError:
        raise RecordError(f"record {path} does not exist; write it with pytest --audit ... --audit-json {path}") from None
    except UnfitFile as error:
        raise RecordError(f"record {path} {error}", fix="give the path of a JSON record written by --audit-json "
                                                       "or --audit-save-baseline") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"record {path} cannot be read ({error}); check the file") from None
    return loads(text, f"record {path}")


def interval_to_json(iv: Any) -> dict[str, Any] | None:
    """An interval as the record writes it (for other keepers of intervals: the store's kept intervals)."""
    return _interval_out(iv)


def interval_from_json(value: Any, where: str = "interval") -> Any:
    """An interval read back from :func:`interval_to_json`; a malformed one raises :class:`RecordError`."""
    try:
        return _interval_in(value, where)
    except _Malformed as problem:
        raise RecordError(f"malformed interval: {problem}") from None
