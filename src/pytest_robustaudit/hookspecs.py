"""Hook specifications of pytest-robustaudit (docstrings only; implement them in a conftest or plugin).

The built-in metrics and model sources are registered through these same hooks (see
``builtin.py``), so a third-party metric is a first-class citizen: it can be checked from a spec,
shows in the report and gets did-you-mean suggestions.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_robustaudit_register_metrics(metrics):
    """Register metrics: call ``metrics.register(Metric(...))`` for each.

    :param metrics: the :class:`pytest_robustaudit.registries.MetricRegistry` being filled.
    Registering a name that is already taken is an error naming both.
    """


@hookspec
def pytest_robustaudit_register_model_sources(sources):
    """Register model sources: call ``sources.register(source)`` with an object that has ``name``,
    ``required`` (spec keys it needs) and ``load(model_spec) -> LoadedModel``.
    """


@hookspec
def pytest_robustaudit_register_image_sets(image_sets):
    """Register kinds of image set: call ``image_sets.register(ImageSetKind(...))`` for each.

    A kind is named in a spec's ``shifts:`` as ``{kind: NAME, OPTION: VALUE, ...}`` (its options are its
    ``params``); its ``transform(crop, rng, **options)`` changes each probe image's eval crop, and its set
    is read by ``corruption_accuracy`` and ``corruption_drop`` (docs/extending.md#your-own-image-set).
    The built-in kinds (folder, given, corruption) are registered through this hook too.
    """


@hookspec
def pytest_robustaudit_provenance(spec, model):
    """Return a dict of extra provenance fields for an audit (or None).

    Called once per audited model, after it is loaded.  :param spec: the
    :class:`~pytest_robustaudit.spec.schema.AuditSpec`; :param model: the
    :class:`~pytest_robustaudit.models.base.LoadedModel`.  The fields appear in the result's
    ``provenance``, the JSON record and the report.
    """


@hookspec
def pytest_robustaudit_report_sections(results):
    """Return a list of :class:`~pytest_robustaudit.results.ReportSection` to add to the HTML report.

    :param results: every :class:`~pytest_robustaudit.results.AuditResult` of the run.  Sections are
    typed data (title, text, a table), rendered and escaped by the report; never raw HTML.
    """


@hookspec(firstresult=True)
def pytest_robustaudit_choose_device(requested, worker_index):
    """Return the device an audit runs on (a string such as ``"cuda:1"``), or None to leave it to others.

    :param requested: the spec's ``device`` or ``--audit-device`` (``auto``, ``cpu``, ``cuda``,
        ``cuda:N``, ``mps``).
    :param worker_index: K for the pytest-xdist worker ``gwK``, None outside xdist.

    The built-in choice (registered ``trylast``, so yours wins) maps ``auto`` to ``cuda:K mod
    (number of CUDA devices)`` on worker K, to ``cuda`` in a single process, else ``mps`` or ``cpu``;
    any other value is kept.
    """


@hookspec
def pytest_robustaudit_record_written(config, record, path):
    """Called once per run after its outputs are written: send the run's values elsewhere (an
    experiment tracker, a dashboard, a database); the return value is ignored.

    :param config: the pytest ``Config`` (options, ``rootpath``).
    :param record: the run's record as plain JSON data, exactly what ``--audit-json`` writes (schema:
        docs/report.md): ``record["audits"]`` (each audit's metrics and checks),
        ``record["run"]["relations"]`` (each relation check's rho, interval, bounds and status).
    :param path: the ``pathlib.Path`` the record was written to, or None when ``--audit-json`` was not
        given (or could not be written): the hook is called either way.

    It runs in the pytest process that writes the outputs: under pytest-xdist the controller only,
    never a worker, with every worker's results in ``record``.  Not called by ``--collect-only`` nor by
    ``python -m pytest_robustaudit merge`` (which loads no conftest.py): for sharded runs, read the
    merged record (``merge --json PATH``) in the merge job instead (docs/ci.md#sending-the-values-to-an-experiment-tracker).
    An implementation that raises is named at the end of the run; the exit status stays the audit's.
    """
