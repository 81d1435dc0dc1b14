"""Inconclusive is its own verdict (issue 26): a check whose interval straddles a bound gets its own mark
and word in the terminal table, the Markdown and the HTML report, its own ``status`` in the record, and
the run's policy (``--audit-inconclusive``, fail by default) decides what it does to ``passed``; ``merge``
decides the shards' checks again under the recorded policy.  Results are built by hand (tests/builders.py)."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_robustaudit.analyse.checks import evaluate
from pytest_robustaudit.metrics.bootstrap import Interval
from pytest_robustaudit.metrics.types import MetricValue
from pytest_robustaudit.report import render_report
from pytest_robustaudit.report.markdown import render_markdown
from pytest_robustaudit.report.table import terminal_table
from pytest_robustaudit.results.merge import MergeError, merge_records
from pytest_robustaudit.results.record import record_to_dict
from pytest_robustaudit.spec.schema import CheckSpec

from builders import make_result
from test_hostile_merge import write_shards


def _undecided(policy: str = "fail"):
    """kurtosis_mean 0.7133 [0.6464, 0.7738] against min 0.7, gated on its interval: inconclusive."""
    iv = Interval(0.7133, 0.6464, 0.7738, 0.95, "BCa bootstrap", "lower", 1000, 11)
    check = CheckSpec("kurtosis_mean", "representation", min=0.7, why="the fine-tune must keep its outliers")
    return evaluate(check, MetricValue(0.7133), "model: m", interval=iv, confidence=0.95, inconclusive_policy=policy)


def _result(policy: str = "fail", name: str = "m"):
    result = make_result(name, checks=())
    result.checks.append(_undecided(policy))
    return result


def test_the_policy_decides_passed_and_the_status_stays_inconclusive():
    default, lenient = _undecided(), _undecided("pass")
    assert (default.passed, default.status, default.record_status) == (False, "inconclusive", "inconclusive")
    assert (lenient.passed, lenient.status, lenient.record_status) == (True, "inconclusive", "inconclusive")
    assert not _result().passed and _result("pass").passed


def test_the_terminal_table_says_inconclusive_not_fail():
    lines = terminal_table([_result()])
    row = lines[2]
    assert "0.7133 ?" in row and "✗" not in row and row.endswith("INCONCLUSIVE") and "FAIL" not in row
    assert "0/1, 1 inconclusive" in row


def test_markdown_marks_it_and_names_it_in_the_failures():
    text = render_markdown([_result()])
    assert "❔ 1 of 1 checks inconclusive" in text.splitlines()[0] and "❌" not in text
    assert "- **INCONCLUSIVE** **m** · `representation::kurtosis_mean`: kurtosis_mean on layer 'representation' is inconclusive at 95%" in text


def test_the_html_report_has_its_own_badge_mark_and_words():
    html = render_report([_result()])
    assert 'id="overall">INCONCLUSIVE<' in html and ">FAIL<" not in html
    assert '<span class="mark inconclusive">?</span>kurtosis_mean' in html
    assert "0.7133 [0.6464, 0.7738]</b><span class=\"verdict-text\">: INCONCLUSIVE, the 95% interval straddles min 0.7" in html
    assert "✗" not in html.split('id="failures"')[-1].split("</ul>")[0]


def test_the_record_gives_every_check_a_status():
    result = _result()
    result.checks += make_result("m").checks                                       # a pass and a fail
    result.checks.append(dataclasses.replace(result.checks[-1], skip_reason="no baseline yet"))
    result.checks.append(dataclasses.replace(result.checks[-2], basis="unmeasured", passed=False))
    statuses = [c["status"] for c in record_to_dict([result])["audits"][0]["checks"]]
    assert statuses == ["inconclusive", "pass", "fail", "skipped", "error"]


def _shards(tmp_path, policy: str):
    results = {"a": make_result("a"), "b": _result(policy, "b"), "c": make_result("c")}
    return write_shards(tmp_path, results)


def _set_policy(path, policy):
    import json

    data = json.loads(path.read_text())
    data["run"]["inconclusive_policy"] = policy
    path.write_text(json.dumps(data))


def test_merge_applies_the_recorded_policy(tmp_path):
    first, second = _shards(tmp_path, "pass")
    with pytest.raises(MergeError, match=r"says inconclusive, but .* gives inconclusive"):
        merge_records([first, second])               # passed under "pass", but the record says the policy is fail
    for path in (first, second):
        _set_policy(path, "pass")
    run, results = merge_records([first, second])
    assert run["inconclusive_policy"] == "pass" and next(r for r in results if r.name == "b").passed
    _set_policy(first, "fail")
    with pytest.raises(MergeError, match="different inconclusive policies"):
        merge_records([first, second])
    _set_policy(first, "maybe")
    with pytest.raises(MergeError, match=r"run.inconclusive_policy is 'maybe'"):
        merge_records([first, second])


def test_why_is_kept_when_the_check_gates_on_its_interval():
    """Issue 26: ``why:`` was dropped from the message (terminal, Markdown) of a check with ``confidence``."""
    message = _undecided().message
    assert message.splitlines()[0].startswith("kurtosis_mean on layer 'representation' is inconclusive at 95%")
    assert "\n  why: the fine-tune must keep its outliers" in message
    text = render_markdown([_result()])
    assert "  - why: the fine-tune must keep its outliers" in text


# ---- the outputs agree with each other (issue 26) ---------------------------------------------------

def test_terminal_and_markdown_count_checks_the_same_way_and_say_so():
    result = make_result("m")                       # kurtosis_mean passes, outlier_count (2 > max 1) fails
    terminal = terminal_table([result])
    markdown = render_markdown([result])
    assert terminal[0].split()[-2] == "passed/total" and "| checks passed/total |" in markdown
    assert terminal[2].split()[-2] == "1/2" and "❌ 1/2 |" in markdown


def test_a_summary_cell_shows_the_interval_the_verdict_read():
    from pytest_robustaudit.metrics.bootstrap import Interval as Iv

    result = _result()
    two_sided = Iv(0.7133, 0.6300, 0.7900, 0.95, "BCa bootstrap", "two-sided", 1000, 11)
    result.layers["representation"].intervals["kurtosis_mean"] = two_sided
    markdown = render_markdown([result])
    row = next(line for line in markdown.splitlines() if line.startswith("| m |"))
    assert "0.7133 [0.6464, 0.7738] (95% one-sided) ?" in row and "0.63" not in row
    assert "0.7133 [0.6464, 0.7738] (95% one-sided BCa bootstrap" in markdown      # the failure line: the same ends


def test_the_report_counts_specs_collected_audited_and_errored():
    html = render_report([make_result("a"), _result()], errors={"/audits/broken.yaml": "checkpoint is truncated"})
    strip = html.split('<div class="totals">')[1].split("</div>\n</div>")[0]
    assert "<b>3</b>specs collected" in strip and "<b>2</b>audited" in strip and "<b>1</b>could not run" in strip
    assert "<b>1</b>failed" in strip and "<b>1</b>inconclusive" in strip and "<b>0</b>passed" in strip


def test_each_check_in_the_report_names_its_node_id_and_the_command_that_reruns_it():
    result = make_result("a")
    for check in result.checks:
        check.nodeid = f"audits/a.yaml::{check.layer}::{check.metric}" + ("[factor=10]" if check.params else "")
    html = render_report([result])
    models = html.split('id="models"')[1]
    for check in result.checks:      # every check, passed or not, in its model's table
        assert f'<code class="nodeid">{check.nodeid}</code>' in models
    failures = html.split('id="failures"')[1].split("</section>")[0]    # the failed one, with a quoted command
    assert ("pytest --audit audits/a.yaml &#39;audits/a.yaml::representation::outlier_count[factor=10]&#39;"
            in failures)
    from pytest_robustaudit.results.record import record_to_dict, record_from_dict

    _, back = record_from_dict(record_to_dict([result]))
    assert [c.nodeid for c in back[0].checks] == [c.nodeid for c in result.checks]
