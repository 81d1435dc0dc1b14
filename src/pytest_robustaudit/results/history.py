"""The release history: every kept run's record in one folder, found again by audit and label.

``--audit-history DIR`` keeps each run's record there, so a release can be compared with the one
before it (``--audit-compare last``), a spec can bound the change (``reference: {history: last}``)
and the report can plot each checked value across releases.  Free of pytest.

The folder is written by many CI jobs at once, possibly on a shared disk, so nothing in it is ever
updated in place: each run writes two new files with a name no other run can choose (the time and a
random suffix), each atomically (a temporary file renamed into place):

* ``runs/<id>.json``: the run's whole record (what ``diff`` and a paired comparison read);
* ``index/<id>.json``: a small summary written *after* the record (so an index entry always names a
  whole record): the label, the time, and per audit its key, model and data fingerprints and each
  check's value, interval and status (what listings and trend plots read without opening records).

Runs of one audit line up across releases by their **key**: the spec's path relative to pytest's
rootdir and the audit's name (``audits/lite0.yaml::lite0``), which stay when the checkpoint changes;
the model and data fingerprints are kept beside it, so a comparison can say when the data changed.
A run under ``--audit-limit`` (a smoke run) is never kept: its numbers are not the release's.  A run
whose checks were not all run (``-k``, ``-x``) is kept but marked partial; ``last`` (the last release)
passes over partial runs, failed candidates and runs under the current run's own label.  Unreadable entries (a half-copied folder, a hand edit) are reported and
skipped, never fatal.  docs/ci.md#release-history.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..atomic import write_text_atomic
from ..errors import AuditError
from . import AuditResult

#: what an index entry identifies itself as
INDEX_FORMAT = "pytest-robustaudit/history-entry"
INDEX_VERSION = 1
#: the largest index entry read (an entry holds a few numbers per check)
MAX_INDEX_BYTES = 16 << 20
_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}$")


class HistoryError(AuditError):
    """A history folder that cannot be used, or a reference in it that cannot be found."""


# --------------------------------------------------------------------------------------------
# labels and keys
# --------------------------------------------------------------------------------------------


def _git(args: Sequence[str], cwd: Path) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def default_label(cwd: os.PathLike | str, env: dict[str, str] | None = None) -> str:
    """The label a run gets when ``--audit-label`` is not given: what the CI job builds.

    A tag when there is one (GitHub Actions' ``GITHUB_REF_NAME`` on a tag, GitLab's ``CI_COMMIT_TAG``,
    else ``git describe --tags --exact-match``), otherwise the commit (``GITHUB_SHA``, ``CI_COMMIT_SHA``,
    ``git rev-parse``) shortened to 12 characters, otherwise "" (the entry is then known by its time)."""
    env = dict(os.environ if env is None else env)
    if env.get("GITHUB_REF_TYPE") == "tag" and env.get("GITHUB_REF_NAME"):
        return env["GITHUB_REF_NAME"]
    if env.get("CI_COMMIT_TAG"):
        return env["CI_COMMIT_TAG"]
    cwd = Path(cwd)
    tag = _git(["describe", "--tags", "--exact-match"], cwd)
    if tag:
        return tag
    commit = env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA") or _git(["rev-parse", "HEAD"], cwd)
    return commit[:12]


def key_for(spec_path: os.PathLike | str, name: str, rootdir: os.PathLike | str | None) -> str:
    """``<spec path relative to rootdir>::<audit name>``: the same audit across releases and machines."""
    path = Path(spec_path)
    if rootdir is not None:
        try:
            path = path.resolve().relative_to(Path(rootdir).resolve())
        except ValueError:
            pass
    return f"{path.as_posix()}::{name}"


def audit_key(result: AuditResult, rootdir: os.PathLike | str | None) -> str:
    """:func:`key_for` of an audit's result."""
    return key_for(result.spec_path, result.name, rootdir)


def data_fingerprint(result: AuditResult) -> str:
    """A digest of the images the audit saw (their content hashes, in order): equal when the probe
    data did not change between two runs; "" when the record keeps no hashes."""
    for layer in result.layers.values():
        if layer.image_hashes:
            digest = hashlib.sha256("\n".join(layer.image_hashes).encode()).hexdigest()
            return f"sha256:{digest}"
    return ""


# --------------------------------------------------------------------------------------------
# entries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckPoint:
    """One check's verdict in one kept run (what a trend plot draws)."""

    metric: str
    layer: str
    params: dict[str, Any]
    value: float
    low: float | None
    high: float | None
    status: str
    min: float | None
    max: float | None

    @property
    def key(self) -> tuple:
        return self.metric, self.layer, json.dumps(self.params, sort_keys=True, default=str)


@dataclass(frozen=True)
class AuditEntry:
    key: str
    name: str
    model: str
    fingerprint: str
    data_fingerprint: str
    checks: tuple[CheckPoint, ...] = ()
    #: every check that ran passed (skipped ones aside): a release, not a failed candidate
    passed: bool = True


@dataclass(frozen=True)
class Entry:
    """One kept run: ``id`` (sortable by time), its label, time, marks and audits."""

    id: str
    label: str
    created: str
    partial: str                     # why the run is partial ("" when every selected check ran)
    audits: tuple[AuditEntry, ...]
    folder: Path = field(compare=False, default=Path("."))

    @property
    def record_path(self) -> Path:
        return self.folder / "runs" / f"{self.id}.json"

    @property
    def shown(self) -> str:
        """How messages name the entry: its label and time."""
        return f"{self.label or '(no label)'} ({self.created})"

    def audit(self, key: str) -> AuditEntry | None:
        return next((a for a in self.audits if a.key == key), None)


def json_number(value: Any) -> float | None:
    """A number as records write it (a JSON number, or "NaN"/"Infinity"/"-Infinity"); None when absent or not one."""
    if value is None:
        return None
    if isinstance(value, str):
        from .record import _NONFINITE

        return _NONFINITE.get(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:       # an integer beyond a float (a hand-edited file): not a number we can use
        return None


def json_float(value: Any) -> float:
    """:func:`json_number`, NaN where there is none (a value a table shows as undefined)."""
    found = json_number(value)
    return float("nan") if found is None else found


def _check_points(result: AuditResult) -> list[dict[str, Any]]:
    from .record import _float_out as _out, _free_out

    points = []
    for check in result.checks:
        iv = check.interval
        has = iv is not None and getattr(iv, "has_interval", False)
        points.append({"metric": check.metric, "layer": check.layer, "params": _free_out(dict(check.params)),
                       "value": _out(check.value), "low": _out(iv.low) if has else None,
                       "high": _out(iv.high) if has else None, "status": check.record_status,
                       "min": _out(check.min), "max": _out(check.max)})
    return points


def _entry_from_json(data: Any, folder: Path, origin: str) -> Entry:
    from .record import _free_in

    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        raise HistoryError(f"{origin} is not a pytest-robustaudit history entry")
    stem = Path(origin).stem
    if data.get("id") != stem or not _ID.match(stem):
        # the id names the record read and deleted beside it: never trust one that is not the file's own
        raise HistoryError(f"{origin} names another entry ({data.get('id')!r}); it was copied or edited: remove "
                           f"it with `python -m pytest_robustaudit history prune --id {stem} --dir DIR`")
    if not isinstance(data.get("version"), int) or data["version"] > INDEX_VERSION:
        raise HistoryError(f"{origin} was written by a newer pytest-robustaudit (entry version "
                           f"{data.get('version')!r}); upgrade to read it")
    try:
        audits = []
        for a in data["audits"]:
            checks = tuple(CheckPoint(str(c["metric"]), str(c["layer"]), dict(_free_in(c.get("params") or {})),
                                      json_float(c["value"]),
                                      json_number(c.get("low")), json_number(c.get("high")), str(c.get("status", "")),
                                      json_number(c.get("min")), json_number(c.get("max")))
                           for c in a.get("checks", []))
            audits.append(AuditEntry(str(a["key"]), str(a["name"]), str(a.get("model", "")),
                                     str(a.get("fingerprint", "")), str(a.get("data_fingerprint", "")), checks,
                                     a.get("passed", True) is not False))
        created = str(data["created"])
        _dt.datetime.fromisoformat(created)          # a time prune and the trend's order can read
        return Entry(str(data["id"]), str(data.get("label") or ""), created, str(data.get("partial") or ""),
                     tuple(audits), folder)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise HistoryError(f"{origin} is damaged ({type(error).__name__}: {error}); remove it with "
                           f"`python -m pytest_robustaudit history prune --id {stem} --dir DIR`") from None


class History:
    """A history folder (``--audit-history DIR``): write runs into it, list and find them."""

    def __init__(self, folder: os.PathLike | str):
        self.folder = Path(folder).expanduser()
        #: entries that could not be read by the last :meth:`entries` (path, why): reported, skipped
        self.problems: list[tuple[Path, str]] = []
        #: the entries as last read (a run asks once per audit and reference, then traces its trends): a write
        #: here adds its entry, a removal drops them
        self._read: list[Entry] | None = None

    def _usable(self, create: bool) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise HistoryError(f"the history folder {self.folder} is not a folder; point --audit-history "
                               f"(or the ini key audit_history) at a folder")
        if create:
            try:
                (self.folder / "runs").mkdir(parents=True, exist_ok=True)
                (self.folder / "index").mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise HistoryError(f"cannot create the history folder {self.folder}: {error.strerror or error}; "
                                   f"point --audit-history at a writable folder") from None

    # ---- writing ----------------------------------------------------------------------------------

    def write(self, results: Sequence[AuditResult], run_info: dict[str, Any], rootdir: os.PathLike | str | None,
              *, label: str, partial: str = "") -> Entry:
        """Keep one run: its record, then its index entry; returns the entry."""
        from .record import write_record

        self._usable(create=True)
        now = _dt.datetime.now(_dt.timezone.utc)
        entry_id = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4().hex[:8]}"
        created = now.isoformat(timespec="seconds")
        run = {**run_info, "label": label, "history_entry": entry_id}
        try:
            write_record(results, self.folder / "runs" / f"{entry_id}.json", run)
            index = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "id": entry_id, "label": label,
                     "created": created, "partial": partial,
                     "audits": [{"key": audit_key(r, rootdir), "name": r.name, "model": r.model,
                                 "fingerprint": r.fingerprint, "data_fingerprint": data_fingerprint(r),
                                 "checks": _check_points(r), "passed": r.passed} for r in results]}
            write_text_atomic(self.folder / "index" / f"{entry_id}.json", json.dumps(index, indent=1) + "\n")
        except OSError as error:
            raise HistoryError(f"cannot write to the history folder {self.folder}: {error.strerror or error}; "
                               f"point --audit-history at a writable folder") from None
        entry = self.entry(entry_id)
        if self._read is not None:      # what was read, and this run: the folder is not read again
            self._read = sorted([*self._read, entry], key=lambda e: e.id)
        return entry

    # ---- reading ----------------------------------------------------------------------------------

    def entry(self, entry_id: str) -> Entry:
        from ..files import read_json

        path = self.folder / "index" / f"{entry_id}.json"
        try:
            data = read_json(path, MAX_INDEX_BYTES)
        except (OSError, ValueError, AuditError) as error:
            raise HistoryError(f"cannot read the history entry {path}: {error}") from None
        return _entry_from_json(data, self.folder, str(path))

    def entries(self) -> list[Entry]:
        """Every readable entry, oldest first; unreadable ones go to :attr:`problems`.  Read once, then kept,
        with the entries this object writes, until it removes one (another job's later entry is seen by the
        next run)."""
        if self._read is not None:
            return list(self._read)
        self._usable(create=False)
        self.problems = []
        index = self.folder / "index"
        if not index.is_dir():
            return []
        found = []
        for path in sorted(index.iterdir()):
            if path.name.startswith(".") or path.suffix != ".json":
                continue           # temporary files of a write under way, and anything else
            if not _ID.match(path.stem):
                self.problems.append((path, "not a history entry name"))
                continue
            try:
                found.append(self.entry(path.stem))
            except HistoryError as error:
                self.problems.append((path, str(error)))
        self._read = sorted(found, key=lambda e: e.id)
        return list(self._read)

    def find(self, key: str, reference: str, exclude: Iterable[str] = (), label: str = "") -> Entry | None:
        """The entry of audit ``key`` that ``reference`` names; ``exclude``: entry ids passed over.

        ``last``: the newest entry of the last release: complete (no check left out), passed (a failed
        candidate is not a release) and under another label than ``label``, the current run's (a retried
        job never compares a candidate with itself).  A label: the newest complete entry with that label,
        else its newest partial one."""
        skip = set(exclude)
        candidates = [e for e in self.entries() if e.id not in skip and e.audit(key) is not None]
        if reference == "last":
            candidates = [e for e in candidates if not e.partial and e.audit(key).passed
                          and not (label and e.label == label)]
        else:
            labelled = [e for e in candidates if e.label == reference]
            candidates = [e for e in labelled if not e.partial] or labelled
        return candidates[-1] if candidates else None

    def labels(self) -> list[str]:
        return [e.label for e in self.entries() if e.label]

    def remove(self, entry: Entry) -> None:
        """Delete one entry: its index first (so no listing names a record that is gone), then its record."""
        self._read = None
        (self.folder / "index" / f"{entry.id}.json").unlink(missing_ok=True)
        entry.record_path.unlink(missing_ok=True)

    def prune(self, keep: int | None = None, older_than: float | None = None, ids: Iterable[str] = (),
              now: float | None = None) -> list[Entry]:
        """Remove entries: all but the newest ``keep`` per audit key, those older than ``older_than``
        seconds, and those named in ``ids``; returns what was removed.  An entry is kept while it is
        among the newest ``keep`` of any of its audits."""
        import time

        entries = self.entries()
        now = time.time() if now is None else now
        doomed: dict[str, Entry] = {}
        named = set(ids)
        unknown = named - {e.id for e in entries}
        if unknown:
            raise HistoryError(f"no history entry {', '.join(sorted(unknown))} in {self.folder}; "
                               f"`python -m pytest_robustaudit history list --dir {self.folder}` shows the ids")
        for e in entries:
            if e.id in named:
                doomed[e.id] = e
            if older_than is not None:
                created = _dt.datetime.fromisoformat(e.created).timestamp()
                if now - created > older_than:
                    doomed[e.id] = e
        if keep is not None:
            # per audit, the newest ``keep`` complete runs, and any partial run newer than all of them
            kept: set[str] = set()
            keys = {a.key for e in entries for a in e.audits}
            for key in keys:
                mine = [e for e in entries if e.audit(key)]
                complete = [e for e in mine if not e.partial][-keep:] if keep > 0 else []
                kept.update(e.id for e in complete)
                newest = complete[-1].id if complete else ""
                kept.update(e.id for e in mine if e.partial and e.id > newest)
            for e in entries:
                if e.id not in kept:
                    doomed[e.id] = e
        for e in doomed.values():
            self.remove(e)
        return sorted(doomed.values(), key=lambda e: e.id)

    def read_audit(self, entry: Entry, key: str) -> tuple[dict[str, Any], AuditResult]:
        """The audit ``key`` of ``entry`` as its record holds it, with the run information."""
        from .record import RecordError, read_record

        try:
            run, results = read_record(entry.record_path)
        except RecordError as error:
            raise HistoryError(f"the history entry {entry.id} ({entry.shown}) names a record that cannot be read: "
                               f"{error}; remove the entry with `python -m pytest_robustaudit history prune "
                               f"--id {entry.id} --dir {self.folder}`") from None
        name = entry.audit(key).name
        for result in results:
            if result.name == name:
                return run, result
        raise HistoryError(f"the record of history entry {entry.id} holds no audit named '{name}'")


class ReleaseHistory:
    """The history a run works with: the folder, pytest's rootdir (for keys) and the run's label.  Reads
    each reference once, whichever spec or comparison asks.

    ``label``: the label, or what finds it (``git`` runs: called on first use only, so a run that never
    looks into the history, such as a pytest-xdist worker or a run without audits, never starts git)."""

    def __init__(self, folder: os.PathLike | str, rootdir: os.PathLike | str | None,
                 label: str | Callable[[], str]):
        self.folder = History(folder)
        self.rootdir = rootdir
        self._label = label
        self._read: dict[tuple[str, str], tuple[Entry, AuditResult] | None] = {}

    @property
    def label(self) -> str:
        if callable(self._label):
            self._label = self._label()
        return self._label

    def key(self, spec_path: os.PathLike | str, name: str) -> str:
        return key_for(spec_path, name, self.rootdir)

    def reference_audit(self, spec_path: os.PathLike | str, name: str, wanted: str) -> tuple[Entry, AuditResult] | None:
        """The entry ``wanted`` (``last`` or a label) names for this audit and the audit as it recorded it;
        None when there is none yet."""
        key = self.key(spec_path, name)
        if (key, wanted) not in self._read:
            entry = self.folder.find(key, wanted, label=self.label)
            self._read[(key, wanted)] = None if entry is None else (entry, self.folder.read_audit(entry, key)[1])
        return self._read[(key, wanted)]
