"""Run-level relation checks (issue 17): a YAML file whose top level is ``relation:`` bounds Spearman's
rho between an outlier metric and effective robustness across the run's audits.

Four audits of one tiny factory model whose representation's channel 0 is scaled by 1, 3, 10, 30
(kurtosis across channels grows with it), each given ImageNet and ImageNet-R accuracies so ER
exists without shifted images: the ER order is planted, the relation is then ±1 by construction."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from support import tiny_classifier_factory

FACTORY = tiny_classifier_factory()

SCALES = (1.0, 3.0, 10.0, 30.0)


def run(pytester, *args):
    return pytester.runpytest("-p", "no:randomly", *args)


@pytest.fixture
def audits(pytester):
    """``audits/`` with the factory, probe images and a writer of the four specs."""
    from PIL import Image

    root = pytester.path / "audits"
    (root / "images").mkdir(parents=True)
    (root / "tiny_relation_factory.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    for label in ("0", "1", "2"):
        (root / "images" / label).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "images" / label / f"{i}.png")

    def write(shifted_accuracies, scales=SCALES):
        for scale, shifted in zip(scales, shifted_accuracies):
            (root / f"tiny_x{scale:g}.yaml").write_text(textwrap.dedent(f"""\
                name: tiny-x{scale:g}
                model: {{source: factory, factory: tiny_relation_factory.py:build, options: {{scale: {scale}}}}}
                data: {{path: images, batch_size: 4}}
                layers: [representation]
                device: cpu
                shifts:
                  - {{name: imagenet, accuracy: 0.7, source: trial}}
                  - {{set: imagenet-r, accuracy: {shifted}, source: trial}}
                checks:
                  kurtosis_mean: {{min: -10}}
                """))
        return root

    sys.modules.pop("tiny_relation_factory", None)
    yield write
    sys.modules.pop("tiny_relation_factory", None)


RELATION = """\
relation:
  metric: kurtosis_mean
  min_rho: 0.5
"""


#: a conftest.py whose record_written hook keeps what it was given, one JSON line per call
RECORDING_HOOK = """\
import json, os


def pytest_robustaudit_record_written(config, record, path):
    with open("hook-calls.jsonl", "a") as out:
        out.write(json.dumps({"path": path and str(path), "relations": record["run"]["relations"],
                              "audits": [a["name"] for a in record["audits"]], "pid": os.getpid()}) + "\\n")
"""


def test_planted_monotone_relation_passes_after_the_audits(audits, pytester):
    """... and its verdict reaches the record_written hook, called once even without --audit-json."""
    import json
    import os

    root = audits((0.2, 0.3, 0.4, 0.5))        # ER grows with the scale, as kurtosis does
    (root / "relation.yaml").write_text(RELATION)
    (pytester.path / "conftest.py").write_text(RECORDING_HOOK)
    result = run(pytester, "--audit", "audits", "-v", "--no-audit-report")
    result.assert_outcomes(passed=5)
    lines = [line for line in result.stdout.lines if "PASSED" in line]
    assert lines[-1].startswith("audits/relation.yaml::relation::kurtosis_mean PASSED"), lines
    [call] = [json.loads(line) for line in (pytester.path / "hook-calls.jsonl").read_text().splitlines()]
    assert call["path"] is None and call["pid"] == os.getpid()     # no --audit-json; this (in-process) run
    assert sorted(call["audits"]) == ["tiny-x1", "tiny-x10", "tiny-x3", "tiny-x30"]
    [relation] = call["relations"]
    assert (relation["status"], relation["rho"], relation["n"], relation["left_out"]) == ("pass", 1.0, 4, [])


def test_reversed_relation_fails_with_the_models_under_xdist(audits, pytester):
    """Under -n 2 the relation item runs on one worker, which audits there the specs it did not run."""
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    root = audits((0.5, 0.4, 0.3, 0.2))
    (root / "relation.yaml").write_text(RELATION)
    result = run(pytester, "--audit", "audits", "--no-audit-report", "-n", "2")
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    assert "Spearman rho(kurtosis_mean, effective_robustness) = -1.000 [-1.000, -1.000] (95% interval) over 4 " \
           "models: rho < min_rho 0.5" in out, out
    assert "required: rho ≥ 0.5" in out
    assert "models by kurtosis_mean (4; kurtosis_mean, ER): tiny-x1 (1.8" in out and "tiny-x30 (4.1" in out
    assert "no audit result reached the report" not in out and "Traceback" not in out


def test_interval_gate_needs_an_interval(audits, pytester):
    """... and is INCONCLUSIVE in the summary; a record_written hook that raises is said, nothing else."""
    root = audits((0.2, 0.3, 0.4), scales=SCALES[:3])   # 3 models: rho, but no interval (it needs 4)
    (root / "relation.yaml").write_text(RELATION + "  confidence: 0.9\n")
    (pytester.path / "conftest.py").write_text("def pytest_robustaudit_record_written(config, record, path):\n"
                                               "    raise ConnectionError('tracker down')\n")
    result = run(pytester, "--audit", "audits", "--no-audit-report")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED     # the relation's verdict, not the hook's error
    out = result.stdout.str()
    assert "= 1.000 over 3 models: inconclusive, no interval" in out, out
    assert "required: rho ≥ 0.5 with 90% confidence (the whole interval)" in out
    assert "audits/relation.yaml  kurtosis_mean  +1.000               3  rho ≥ 0.5 (90% interval)  INCONCLUSIVE" in out
    assert "robustaudit: a pytest_robustaudit_record_written hook raised: ConnectionError: tracker down" in out


def test_fewer_than_three_models_fail_saying_why(audits, pytester):
    root = audits((0.2, 0.3), scales=(1.0, 3.0))
    (root / "broken.yaml").write_text("model: {source: factory, factory: tiny_relation_factory.py:nothing}\n"
                                      "data: {path: images}\ndevice: cpu\nchecks: {kurtosis_mean: {min: 0}}\n")
    (root / "no_er.yaml").write_text("name: no-er\nmodel: {source: factory, factory: tiny_relation_factory.py:build}\n"
                                     "data: {path: images}\nlayers: [representation]\ndevice: cpu\n"
                                     "checks: {kurtosis_mean: {min: 0}}\n")
    (root / "relation.yaml").write_text(RELATION)
    result = run(pytester, "--audit", "audits", "--no-audit-report")
    out = result.stdout.str()
    assert "could not be measured: only 2 audited models with both kurtosis_mean and ER" in out, out
    assert "needs at least 3" in out
    assert "broken (could not be audited: " in out
    assert "no-er (effective_robustness: " in out
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_bad_keys_are_located_spec_errors(pytester):
    pytester.mkdir("audits")
    (pytester.path / "audits" / "relation.yaml").write_text(
        "relation:\n  metric: kurtosis_maen\n  min_rho: 1.5\n  confidense: 0.9\n")
    result = run(pytester, "--audit", "audits", "--no-audit-report")
    out = result.stdout.str()
    assert result.ret != pytest.ExitCode.OK
    assert "invalid relation file (3 problems):" in out, out
    assert "relation.yaml:2" in out and "relation.metric" in out and "kurtosis_mean" in out, out
    assert "relation.yaml:3" in out and "relation.min_rho" in out and "[-1, 1]" in out
    assert "relation.yaml:4" in out and "unknown key 'confidense'" in out and "confidence" in out


def test_validate_accepts_a_relation_file(pytester, tmp_path):
    from pytest_robustaudit.__main__ import main

    (tmp_path / "relation.yaml").write_text("relation:\n  metric: outlier_count\n  max_rho: 0.9\n  confidence: 0.9\n")
    assert main(["validate", str(tmp_path / "relation.yaml")]) == 0
    (tmp_path / "relation.yaml").write_text("relation:\n  metric: outlier_count\n")
    assert main(["validate", str(tmp_path / "relation.yaml")]) == 1



def test_a_relation_on_a_metric_no_check_reads_is_planned_in_every_audit(audits, pytester):
    """The relation's metric is computed by every audit it relates, though no spec checks it (issue 24)."""
    import json

    root = audits((0.2, 0.3, 0.4, 0.5))
    (root / "relation.yaml").write_text("relation:\n  metric: importance_top_share\n  min_rho: -1\n")
    result = run(pytester, "--audit", "audits", "--no-audit-report", "--audit-json", "record.json")
    result.assert_outcomes(passed=5)
    record = json.loads((pytester.path / "record.json").read_text())
    for audit in record["audits"]:
        assert "relation relation.yaml" in audit["plan"]["planned"]["importance_top_share"]["why"]
        assert "relation relation.yaml" in audit["plan"]["planned"]["effective_robustness"]["why"]


def tracker_conftest() -> str:
    """The conftest.py of docs/ci.md's tracker example, as the page shows it."""
    import re

    from support import REPO

    page = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example: tracker -->\n```python\n# file: conftest.py\n(.*?)```", page, re.S)
    assert found, "docs/ci.md lost its tracker example"
    return found.group(1)


@pytest.fixture
def tracker():
    """A local HTTP endpoint that keeps every JSON body POSTed to it: (url, bodies)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    bodies = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):   # noqa: N802 - http.server's name
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/runs", bodies
    server.shutdown()
    server.server_close()


SAME = ("file", "metric", "layer", "min_rho", "max_rho", "confidence", "status", "rho", "low", "high", "level", "n",
        "models", "sha256")


def test_a_sharded_relation_is_deferred_and_merge_gives_the_verdict_of_one_process(audits, pytester, monkeypatch,
                                                                                  tracker):
    """One run under -n 2 with docs/ci.md's tracker conftest.py (its hook runs once, in the controller,
    with the worker's relation verdict), then the same audits in two shards (the relation deferred in
    each) and their merge: the merged relation is the single run's, in every output."""
    import json

    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    from pytest_robustaudit.__main__ import main

    root = audits((0.5, 0.4, 0.3, 0.2))        # ER falls as kurtosis grows: rho = -1 < 0.5, the relation fails
    (root / "relation.yaml").write_text(RELATION)
    (pytester.path / "conftest.py").write_text(tracker_conftest())
    url, bodies = tracker
    monkeypatch.setenv("TRACKER_URL", url)
    one = run(pytester, "--audit", "audits", "--no-audit-report", "-n", "2", "--audit-json", "one.json",
              "--audit-markdown", "one.md")
    one.assert_outcomes(passed=4, failed=1)
    single = json.loads((pytester.path / "one.json").read_text())
    [relation] = single["run"]["relations"]
    assert (relation["status"], relation["rho"], relation["n"], relation["min_rho"]) == ("fail", -1.0, 4, 0.5)
    assert relation["file"] == "audits/relation.yaml" and relation["nodeid"] == "audits/relation.yaml::relation::kurtosis_mean"
    assert [m["name"] for m in sorted(relation["models"], key=lambda m: m["value"])] == \
        ["tiny-x1", "tiny-x3", "tiny-x10", "tiny-x30"]
    out = one.stdout.str()
    assert "audits/relation.yaml  kurtosis_mean  -1.000 [-1.00, -1.00] (95%)       4  rho ≥ 0.5  FAIL" in out, out
    markdown = (pytester.path / "one.md").read_text()
    assert "### Relation checks" in markdown and "| ❌ fail |" in markdown
    assert markdown.startswith("## Robustness audit: ❌ 1 of 1 relation check did not pass; all 4 audit checks passed")
    [sent] = bodies                             # once per run: the controller, not the two workers
    assert sent["tags"]["relation.audits/relation.yaml"] == "fail"
    assert sent["metrics"]["relation.audits/relation.yaml.rho"] == -1.0
    x30 = next(m for m in relation["models"] if m["name"] == "tiny-x30")
    assert sent["metrics"]["tiny-x30.representation.kurtosis_mean"] == x30["value"]
    assert sent["tags"]["tiny-x30.representation.kurtosis_mean"] == "pass"

    for k in (1, 2):
        shard = run(pytester, "--audit", "audits", "--no-audit-report", "--audit-shard", f"{k}/2",
                    "--audit-json", f"shard-{k}.json", "-rs")
        assert shard.ret == pytest.ExitCode.OK, shard.stdout.str()
        shard.assert_outcomes(passed=2, skipped=1)   # 5 files: the relation is in every shard, deferred
        assert "deferred under --audit-shard" in shard.stdout.str() and "pytest_robustaudit merge" in shard.stdout.str()
        [deferred] = json.loads((pytester.path / f"shard-{k}.json").read_text())["run"]["relations"]
        assert (deferred["status"], deferred["rho"], deferred["min_rho"], deferred["metric"]) == \
            ("deferred", None, 0.5, "kurtosis_mean")
    assert [b["tags"]["relation.audits/relation.yaml"] for b in bodies[1:]] == ["deferred", "deferred"]

    monkeypatch.chdir(pytester.path)
    status = main(["merge", "shard-1.json", "shard-2.json", "--json", "merged.json", "--markdown", "merged.md",
                   "--report", "merged.html"])
    assert status == 1                          # the relation check fails over every shard's audits
    [merged] = json.loads((pytester.path / "merged.json").read_text())["run"]["relations"]
    by_name = lambda r: {**r, "models": sorted(r["models"], key=lambda m: m["name"])}   # noqa: E731
    assert {k: by_name(merged)[k] for k in SAME} == {k: by_name(relation)[k] for k in SAME}
    assert "| ❌ fail |" in (pytester.path / "merged.md").read_text()
    page = (pytester.path / "merged.html").read_text()
    assert 'id="relations"' in page and "rho &lt; min_rho 0.5" in page and '<span class="badge fail">FAIL</span>' in page
