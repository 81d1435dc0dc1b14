"""Collection of YAML specs as files and checks as items.

Thin by design: parsing is ``spec/``, running is ``audit/runner.py``, verdicts are ``analyse/checks.py``.
Collection follows pytest's "Working with non-python tests" example: ``AuditFile`` (one per
spec) → ``AuditLayer`` (one per layer) → ``AuditItem`` (one per check), so node ids read
``audits/x.yaml::representation::kurtosis_mean`` and ``-k``, ``--lf``, ``--junitxml`` just work.
A relation file (top level ``relation:``) is one run-level ``RelationItem``
(``audits/relation.yaml::relation::kurtosis_mean``), moved after every audit item.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import _pytest
import pluggy
import pytest

from ..atomic import escape_surrogates
from ..errors import AuditError, describe_error, display_path, headline
from .state import RELATION_PROPERTY, SPEC_SUFFIXES, check_key, run_state, spec_key

if TYPE_CHECKING:
    from ..spec.schema import AuditSpec, CheckSpec, RelationSpec


def _is_audit_spec(config: pytest.Config, file_path: Path) -> bool:
    state = run_state(config)
    roots = state.audit_paths
    if file_path.suffix not in SPEC_SUFFIXES or roots is None:
        return False
    resolved = Path(os.path.realpath(file_path))
    if state.shard_specs is not None and resolved not in state.shard_specs:
        from .sharding import is_relation_file

        if not is_relation_file(resolved):
            return False  # another shard's spec (--audit-shard)
        # a relation file is collected by every shard: each plans its metric in its audits and records
        # its bounds (the item is deferred), so `merge` judges it over every shard's audits
    for root in roots:
        if resolved == root or root in resolved.parents:
            return True
    explicit = {Path(os.path.realpath(Path(config.invocation_params.dir, arg.split("::")[0]))) for arg in config.args}
    return resolved in explicit


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if _is_audit_spec(parent.config, file_path):
        return AuditFile.from_parent(parent, path=file_path)
    return None


def _under_audit_root(config: pytest.Config, path: Path) -> list[Path]:
    roots = run_state(config).audit_paths or []
    return [r for r in roots if path == r or r in path.parents]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under the ``--audit`` paths, pytest does not walk probe-data folders or symbolic-link loops."""
    state = run_state(config)
    if not state.auditing or not _under_audit_root(config, collection_path) or not collection_path.is_dir():
        return None
    from .walk import is_walked_elsewhere

    probe, holders = state.probe_folders()
    return True if is_walked_elsewhere(collection_path, state.audit_paths, probe, holders) else None


def pytest_collect_directory(path: Path, parent: pytest.Collector):
    """Folders under the ``--audit`` paths: an unreadable one is its own collection error, and a spec
    that is a dangling symbolic link or a loop is reported, not skipped without a word."""
    if not _under_audit_root(parent.config, path):
        return None
    try:
        if (path / "__init__.py").is_file():
            return None   # a Python package: pytest's Package collects it
    except OSError:
        pass
    return AuditDir.from_parent(parent, path=path)


class AuditDir(pytest.Dir):
    """pytest's folder collector, plus what it leaves out silently under an audit path."""

    def collect(self):
        try:
            entries = sorted(os.scandir(self.path), key=lambda entry: entry.name)
        except OSError as error:
            message = f"cannot list the folder under --audit: {error.strerror or error}"
            run_state(self.config).invalid_specs.setdefault(os.fspath(self.path), f"{display_path(self.path)}: {message}")
            raise AuditError(message, where=display_path(self.path),
                             fix="make it readable (chmod u+rx), or move it out of the audit path; the other specs "
                                 "are collected") from None
        yield from super().collect()
        for entry in entries:   # pytest skips these silently: a spec that cannot even be opened
            if entry.name.endswith(SPEC_SUFFIXES) and entry.is_symlink() and not os.path.exists(entry.path):
                yield AuditFile.from_parent(self, path=Path(entry.path))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, AuditError):
            return escape_surrogates(str(excinfo.value))
        return super().repr_failure(excinfo)


class AuditFile(pytest.File):
    """One YAML spec: validated at collection, so a broken spec is a collection error, never skipped."""

    spec: AuditSpec | RelationSpec

    def collect(self):
        from ..spec import load_audit_file
        from ..spec.schema import RelationSpec

        state = run_state(self.config)
        self.spec = state.limited(load_audit_file(self.path, state.registries, architectures=state.architectures))
        if isinstance(self.spec, RelationSpec):
            yield RelationGroup.from_parent(self, name="relation", relation=self.spec)
            return
        state.audit_specs[spec_key(self.path)] = self.spec
        from .sharding import spec_digest

        state.spec_digests[spec_key(self.path)] = spec_digest(self.path)   # what merge matches shards by
        for layer in self.spec.layers:
            checks = [c for c in self.spec.checks if c.layer == layer]
            if checks:
                yield AuditLayer.from_parent(self, name=layer, checks=checks)

    def repr_failure(self, excinfo, style=None):
        # pytest calls a collector's repr_failure(excinfo); the base takes no style
        if isinstance(excinfo.value, AuditError):
            return escape_surrogates(str(excinfo.value))
        return super().repr_failure(excinfo)


class AuditLayer(pytest.Collector):
    """The checks of one layer of one spec."""

    def __init__(self, *, checks: list[CheckSpec], **kwargs):
        super().__init__(**kwargs)
        self.checks = checks

    def collect(self):
        for check in self.checks:
            yield AuditItem.from_parent(self, name=check.name, check=check)


class AuditItem(pytest.Item):
    """One check: passes or fails with a few plain lines (metric, layer, value, bound, model, images)."""

    def __init__(self, *, check: CheckSpec, **kwargs):
        super().__init__(**kwargs)
        self.check = check
        self.spec: AuditSpec = self.parent.parent.spec
        self.add_marker(pytest.mark.xdist_group(name=str(self.spec.path)))

    def runtest(self) -> None:
        state = run_state(self.config)
        state.ran.add(check_key(self.spec.path, self.check))  # the outputs show only checks that ran
        # pytest-rerunfailures counts executions: a rerun may retry an audit that failed with an error
        rerun = getattr(self, "execution_count", 1) > 1
        result = state.session.result(self.spec, rerun=rerun)
        outcome = result.check(self.check.metric, self.check.layer, self.check.params)
        outcome.nodeid = self.nodeid          # the report names it, with the command that re-runs it
        if outcome.skip_reason:
            pytest.skip(outcome.skip_reason)
        self.user_properties.append(("value", outcome.value))
        # the model ran once for the whole audit: every item says how long, none is charged with it
        self.user_properties.append(("extraction_s", round(result.extraction_s, 3)))
        for phase, seconds in (result.phases or {}).items():   # the audit's time per phase (architecture.md)
            self.user_properties.append((f"phase_s:{phase}", seconds))
        from ..audit.notices import notices_of

        for notice in notices_of(result):   # random weights, a smoke run, a dropped check
            self.user_properties.append(("notice", notice))
        self.user_properties.append(("bounds", f"min={outcome.min} max={outcome.max}"))
        self.user_properties.append(("verdict", outcome.status))   # pass, fail or inconclusive (docs/ci.md)
        if not outcome.passed:
            raise (CheckInconclusive if outcome.inconclusive else CheckFailed)(outcome.message)

    def repr_failure(self, excinfo, style=None):
        # texts are escaped as pytest escapes node ids: a non-UTF-8 file name must not crash the terminal
        if isinstance(excinfo.value, CheckFailed):   # JUnit's failure message is this text: the word leads
            prefix = "INCONCLUSIVE: " if isinstance(excinfo.value, CheckInconclusive) else ""
            return escape_surrogates(f"{prefix}{self.spec.name}: {excinfo.value}")
        # the audit could not run: every item of the spec fails with the same error; say it in full once
        first = run_state(self.config).errors_shown.setdefault(self.spec.path, self.nodeid)
        if first != self.nodeid:
            return escape_surrogates(f"{self.spec.name}: {headline(describe_error(excinfo.value, excinfo.tb))}\n"
                                     f"  (the full message is under {first})")
        if isinstance(excinfo.value, AuditError):
            return escape_surrogates(f"{self.spec.name}: {excinfo.value}")
        # anything else keeps pytest's report, trimmed to the frames that matter (see _traceback_filter)
        if style is None and self.config.getoption("tbstyle", "auto") == "auto":
            style = "short"
        return super().repr_failure(excinfo, style)

    def _traceback_filter(self, excinfo):
        """The frames that matter: from the last frame of this package (where the audit called out to
        a factory, a model or a library) to where the error was raised; never pytest's or pluggy's."""
        return trim_traceback(excinfo.traceback)

    def reportinfo(self):
        line = self.check.where.line if self.check.where and self.check.where.line else 1
        return self.path, line - 1, f"{self.spec.name}::{self.check.layer}::{self.check.name}"


class RelationGroup(pytest.Collector):
    """The ``relation`` node of a relation file (node ids ``relation.yaml::relation::METRIC``)."""

    def __init__(self, *, relation: RelationSpec, **kwargs):
        super().__init__(**kwargs)
        self.relation = relation

    def collect(self):
        yield RelationItem.from_parent(self, name=self.relation.metric, relation=self.relation)


class RelationItem(pytest.Item):
    """A run-level check: Spearman's rho between an outlier metric and ER across the audits of every
    spec collected in this process, bounded by the relation file (docs/spec.md#relation-checks).

    It runs after every audit item (:func:`pytest_collection_modifyitems`) and reads their results
    through the session, which runs each audit once: the audits that already ran cost nothing.  Under
    pytest-xdist it runs on one worker, which audits there the specs it has not run itself (their
    activations come from the store when another worker stored them), and sends its outcome to the
    controller with its results.  Under ``--audit-shard`` every shard collects it and skips it as
    deferred (a shard holds part of the audits): its bounds go to the record, and ``merge`` judges it
    over every shard's audits (results/relations.py).  Its outcome goes to every output."""

    def __init__(self, *, relation: RelationSpec, **kwargs):
        super().__init__(**kwargs)
        self.relation = relation
        self.user_properties.append((RELATION_PROPERTY, relation.metric))

    def runtest(self) -> None:
        from ..results.relations import bounds_of, deferred, judge, relation_file_id
        from .sharding import spec_digest

        state = run_state(self.config)
        file = relation_file_id(self.path, self.config.rootpath)
        bounds = bounds_of(self.relation, file, sha256=spec_digest(self.path), nodeid=self.nodeid)
        if state.shard is not None:
            outcome = deferred(bounds, "{}/{}".format(*state.shard))
            state.relations[file] = outcome
            self.user_properties.append(("verdict", outcome.status))
            pytest.skip(outcome.message)
        results, errors = [], []
        for spec in list(state.audit_specs.values()):
            try:
                results.append(state.session.result(spec))
            except Exception as error:  # noqa: BLE001 - the audit's own items show it in full
                errors.append(f"{spec.name} (could not be audited: {headline(describe_error(error, error.__traceback__))})")
        mine = spec_key(self.path)
        errors += [f"{display_path(path)} (invalid spec)" for path in state.invalid_specs if spec_key(path) != mine]
        outcome = judge(bounds, results, errors)
        state.relations[file] = outcome   # for the summary, the Markdown, the report and the record
        self.user_properties.append(("value", outcome.rho))
        self.user_properties.append(("models", outcome.n))
        self.user_properties.append(("verdict", outcome.status))
        if outcome.failed:
            raise CheckFailed(outcome.message)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (CheckFailed, AuditError)):
            return escape_surrogates(f"{display_path(self.path)}: {excinfo.value}")
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        line = self.relation.where.line if self.relation.where and self.relation.where.line else 1
        return self.path, line - 1, f"relation::{self.relation.metric}"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run-level relation checks go after every other item: the audits they relate have run by then."""
    relations = [item for item in items if isinstance(item, RelationItem)]
    if relations:
        items[:] = [item for item in items if not isinstance(item, RelationItem)] + relations
        from ..plan.plan import relation_requests

        session = run_state(relations[0].config).session   # every audit computes what the relations read
        for item in relations:
            session.requests.extend(relation_requests(item.relation))


class CheckFailed(AssertionError):
    """A check's value is outside its bounds (the message is the whole explanation)."""


class CheckInconclusive(CheckFailed):
    """A check's interval straddles a bound and the run's policy fails such a check (the default)."""


#: frames of these folders never matter to the reader of an audit's error
_RUNNER_DIRS = tuple(os.path.join(str(Path(m.__file__).resolve().parent), "") for m in (pytest, pluggy, _pytest))
_OURS = os.path.join(str(Path(__file__).resolve().parents[1]), "")
#: at most this many frames are shown (the first and the innermost ones)
MAX_FRAMES = 12


def trim_traceback(traceback):
    """pytest's traceback without the runner's frames, cut to start at our last frame (the call into
    the user's or a library's code), and at most :data:`MAX_FRAMES` long (first 2 and last ones)."""
    entries = [e for e in traceback if not str(e.path).startswith(_RUNNER_DIRS)]
    ours = [i for i, e in enumerate(entries) if str(e.path).startswith(_OURS)]
    if ours and ours[-1] < len(entries) - 1:
        entries = entries[ours[-1]:]
    if len(entries) > MAX_FRAMES:
        entries = entries[:2] + entries[-(MAX_FRAMES - 2):]
    return type(traceback)(entries) if entries else traceback
