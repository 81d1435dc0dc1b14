"""pytest glue, the only code that imports pytest: options, collection, fixtures and outputs.

This module is the ``pytest11`` entry point, so pytest imports it in every run of an environment
where the plugin is installed: it imports nothing heavy, and the rest of the glue registers in
``pytest_configure``.  One :class:`~.state.RunState` per run owns the registries, the audit
session and the outputs (``state.py``).

* ``collect.py``: ``AuditFile`` (one per spec) → ``AuditLayer`` (one per layer) → ``AuditItem``
  (one per check), as in pytest's "Working with non-python tests" example.
* ``fixtures.py``: ``audit`` and ``audit_run`` for users' own assertions.
* ``outputs.py``: the HTML report, JSON record, CSV table, Markdown summary, baselines and terminal table.
* ``xdist.py``: the pytest-xdist hooks, registered only when xdist is active.
"""

from __future__ import annotations

import pytest

from .state import (RunState, audit_limit_option, check_device_option, check_interval_settings, resolve_audit_paths,
                    run_key, uncovered_roots)

USE_INI = "<ini audit_paths>"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from .. import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustaudit", "robustness audits of vision encoders (pytest-robustaudit)")
    group.addoption(
        "--audit", action="append", nargs="?", const=USE_INI, dest="audit_paths", metavar="PATH", default=None,
        help="collect the YAML audit specs in PATH (file or folder, searched recursively; repeatable). "
             "Without a PATH: the paths of the 'audit_paths' ini key.",
    )
    group.addoption("--audit-save-baseline", action="store_true", dest="audit_save_baseline",
                    help="write each audited spec's results to its 'reference: {baseline: PATH}' file after the run "
                         "(relative checks compare with the previous baseline if there is one, else are skipped).")
    group.addoption("--audit-device", dest="audit_device", default=None, metavar="DEVICE",
                    help="run every audit on DEVICE (auto, cpu, cuda, cuda:N, mps), overriding the specs' 'device'.")
    group.addoption("--audit-report", dest="audit_report", default=None, metavar="PATH",
                    help="write the HTML report of the audits to PATH (default with --audit: robustaudit-report.html "
                         "in the current folder; 'none' turns it off).")
    group.addoption("--no-audit-report", dest="audit_report", action="store_const", const="none",
                    help="do not write the HTML report.")
    group.addoption("--audit-markdown", dest="audit_markdown", default=None, metavar="PATH",
                    help="write a Markdown summary (table of audits, each failure) to PATH, e.g. $GITHUB_STEP_SUMMARY.")
    group.addoption("--audit-report-link", dest="audit_report_link", default=None, metavar="TEXT",
                    help="how the Markdown summary names the HTML report: a URL, a CI artefact name, or 'none' "
                         "(default: the report's path relative to the current folder).")
    group.addoption("--audit-json", dest="audit_json", default=None, metavar="PATH",
                    help="write the audits' results as a versioned JSON record to PATH (schema: docs/report.md).")
    group.addoption("--audit-csv", dest="audit_csv", default=None, metavar="PATH",
                    help="write the audits' values as a flat CSV table to PATH: one row per audit, layer, metric "
                         "and parameters, with interval and check status (columns: docs/report.md).")
    group.addoption("--audit-shard", dest="audit_shard", default=None, metavar="K/N",
                    help="audit only the K-th of N deterministic parts of the specs (a CI matrix, a job array); "
                         "merge the shards' JSON records with: python -m pytest_robustaudit merge RECORD...")
    group.addoption("--audit-cache-dir", dest="audit_cache_dir", default=None, metavar="PATH",
                    help="keep the activation store in PATH (default: the ini key 'audit_cache_dir', else "
                         "$ROBUSTAUDIT_CACHE_DIR, else robustaudit-store in pytest's cache dir; docs/store.md).")
    group.addoption("--audit-cache", dest="audit_cache", default="on", choices=("on", "off", "refresh"),
                    help="on: read stored activations and keep new ones (default); off: a private temporary "
                         "store for this run; refresh: recompute every entry this run needs and replace it.")
    group.addoption("--audit-limit", dest="audit_limit", default=None, metavar="N",
                    help="a smoke run: audit every spec as if its data.limit were the smaller of N and its own (the "
                         "same seeded subset; shifted folders likewise, corruptions follow the probe, concept banks "
                         "are whole); every output marks the run.")
    group.addoption("--audit-plan", dest="audit_plan", action="store_true",
                    help="after collection, print each spec's plan: the metrics it computes on which layers and why, "
                         "what it measures, and what it leaves out (with --collect-only: without running anything).")
    group.addoption("--audit-inconclusive", dest="audit_inconclusive", default=None, choices=("fail", "pass"),
                    help="what a check whose interval straddles a bound does to the exit status: fail (default: a "
                         "gate that cannot decide does not pass) or pass; it is still shown as INCONCLUSIVE.")
    from .history import add_options

    add_options(group, parser)
    parser.addini("audit_inconclusive", default="", help="default for --audit-inconclusive (fail or pass)")
    parser.addini("audit_cache_dir", default="", help="default for --audit-cache-dir (relative to the rootdir)")
    parser.addini("audit_paths", type="paths", default=[],
                  help="default spec paths for a bare '--audit' (relative to the ini file)")
    parser.addini("audit_device", default="", help="default for --audit-device")
    parser.addini("audit_report_link", default="", help="default for --audit-report-link")
    parser.addini("audit_confidence", default="",
                  help="default confidence of every check, e.g. 0.95: gate on the interval (docs/intervals.md)")
    parser.addini("audit_resamples", default="", help="bootstrap resamples per interval (default 1000)")
    parser.addini("audit_bootstrap_method", default="",
                  help="auto (each family's own), percentile or bca: the bootstrap of per-image metrics")


def pytest_report_header(config: pytest.Config) -> str | None:
    limit = config.stash[run_key].audit_limit if run_key in config.stash else None
    if limit is None:
        return None
    return (f"robustaudit: smoke run (--audit-limit {limit}): at most {limit} images per probe and shifted folder; "
            "numbers not comparable with a full run")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(run_key, None)
    if state is not None and state.has_session:
        state.session.close()  # a private temporary store (--audit-cache off) goes away with the run


def pytest_configure(config: pytest.Config) -> None:
    from .. import builtin
    from . import collect, fixtures, outputs, plan_view

    state = RunState(config)
    config.stash[run_key] = state
    manager = config.pluginmanager
    manager.register(builtin, "robustaudit-builtin")
    manager.register(state, "robustaudit-run")
    manager.register(collect, "robustaudit-collect")
    manager.register(fixtures, "robustaudit-fixtures")
    manager.register(outputs, "robustaudit-outputs")
    manager.register(plan_view, "robustaudit-plan")
    if manager.hasplugin("xdist"):
        from . import xdist

        manager.register(xdist, "robustaudit-xdist")
    config.addinivalue_line("markers", "xdist_group(name): audit items of one spec share a worker (pytest-xdist)")
    config.addinivalue_line("markers", "audit_spec(path): the audit spec whose results the audit_run fixture gives")
    check_device_option(config.getoption("audit_device"), "--audit-device")
    state.audit_limit = audit_limit_option(config)
    check_device_option(config.getini("audit_device"), "the ini key audit_device:")
    from .history import check_options

    check_options(config)   # --audit-history at a file, an empty --audit-compare: usage errors now
    requested = config.getoption("audit_paths")
    if not requested:
        return
    state.audit_paths = resolve_audit_paths(config, requested, USE_INI)
    check_interval_settings(config)   # a bad ini key (audit_resamples: 100000000) is a usage error now, not N failures
    if config.getoption("audit_shard") is not None:   # --audit-shard "" is a usage error, not "audit everything"
        from .sharding import members, parse_shard, spec_files, spec_set

        state.shard = parse_shard(config.getoption("audit_shard"))
        files = spec_files(state.audit_paths, config.getini("norecursedirs"))
        state.shard_specs = members(files, config.rootpath, *state.shard)
        state.spec_set = spec_set(files, config.rootpath, *state.shard)
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(p) for p in state.audit_paths]  # `pytest --audit audits/` runs the audits only
    else:  # `pytest --audit audits/ tests/`: the specs too, unless an argument already selects in them
        config.args = [*config.args, *(str(p) for p in uncovered_roots(config, state.audit_paths))]
