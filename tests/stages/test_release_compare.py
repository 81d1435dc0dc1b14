"""The change from a reference release (analyse/compare.py): verdicts, pairing, the record's form, and the
spec keys that feed it (``margin:``, ``reference: {history: ...}``)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from builders import REGISTRIES, make_result, make_stats
from pytest_robustaudit.analyse.compare import (Change, bad_direction, compare_audits, compare_runs,
                                                comparison_from_json, comparison_to_json, exploratory_reading,
                                                gate_verdict)
from pytest_robustaudit.metrics.bootstrap import Interval
from pytest_robustaudit.results import CheckOutcome, LayerResult


def iv(low: float, high: float, value: float | None = None) -> Interval:
    return Interval((low + high) / 2 if value is None else value, low, high, 0.95, "test")


@pytest.mark.parametrize("interval, bad, margin, expected", [
    (iv(0.2, 0.4), "up", 0.1, "regressed"),        # the whole move is toward the bound, beyond the margin
    (iv(0.05, 0.4), "up", 0.1, "inconclusive"),    # part of it within the margin
    (iv(-0.4, -0.2), "up", 0.1, "improved"),
    (iv(-0.05, 0.08), "up", 0.1, "unchanged"),     # within +-margin
    (iv(-0.05, 0.08), "up", 0.0, "inconclusive"),  # no margin: only an exact zero reads unchanged
    (iv(0.2, 0.4), "down", 0.1, "improved"),       # a lower bound: going up is away from it
    (iv(-0.4, -0.2), "down", 0.1, "regressed"),
    (iv(0.0, 0.0), "down", 0.0, "unchanged"),
    (iv(-0.4, -0.2), "", 0.1, "inconclusive"),     # no direction is worse: only equivalence can be read
    (None, "up", 0.0, "inconclusive"),
])
def test_gate_verdicts(interval, bad, margin, expected):
    delta = interval.value if interval is not None else 0.3
    assert gate_verdict(interval, delta, bad, margin) == expected


def test_an_identical_value_without_interval_is_unchanged_and_a_moved_one_inconclusive():
    assert gate_verdict(None, 0.0, "up", 0.0) == "unchanged"
    assert gate_verdict(None, 0.01, "up", 0.0) == "inconclusive"
    assert gate_verdict(None, 0.01, "up", 0.05) == "unchanged"
    assert exploratory_reading(iv(0.1, 0.2), 0.15) == "changed up"
    assert exploratory_reading(iv(-0.3, -0.1), -0.2) == "changed down"
    assert exploratory_reading(iv(-0.1, 0.2), 0.05) == "no clear change"


def _check(min_: float | None, max_: float | None) -> CheckOutcome:
    return CheckOutcome("m", "l", 1.0, min_, max_, True, "")


def test_the_bad_direction_follows_the_bound():
    assert bad_direction(_check(0.5, None), 1.0) == "down"
    assert bad_direction(_check(None, 2.0), 1.0) == "up"
    assert bad_direction(_check(0.0, 10.0), 2.0) == "down"     # nearer the lower bound
    assert bad_direction(_check(0.0, 10.0), 9.0) == "up"
    assert bad_direction(_check(None, None), 1.0) == ""


def _with_hashes(result, n=40, prefix="img"):
    layers = {name: dataclasses.replace(layer, image_hashes=tuple(f"{prefix}{i:04d}" for i in range(n)))
              for name, layer in result.layers.items()}
    return dataclasses.replace(result, layers=layers)


def _rescaled(result, scale: float):
    """``result`` with its representation's outliers scaled by ``scale`` (the same Gaussian draws)."""
    stats = make_stats("representation", scale=scale)
    metrics = {m: REGISTRIES.metrics.get(m).evaluate(stats) for m in result.layers["representation"].metrics}
    return dataclasses.replace(result, layers={"representation": LayerResult("representation", stats, metrics,
                                               image_hashes=result.layers["representation"].image_hashes)})


def test_same_images_are_paired_and_a_change_toward_the_bound_regresses():
    checks = (("kurtosis_mean", {"max": 1000.0}, {}),)
    before = _with_hashes(make_result("a", checks=checks))
    after = _rescaled(before, 1000.0)
    after = dataclasses.replace(after, checks=[dataclasses.replace(before.checks[0],
                                value=after.layers["representation"].metrics["kurtosis_mean"].value)])
    comp = compare_audits(after, before, REGISTRIES.metrics, reference_label="v1")
    (checked,) = [c for c in comp.changes if c.checked]
    assert checked.basis.startswith("paired by image (40 images)")
    assert checked.interval.has_interval and checked.interval.low > 0 and checked.verdict == "regressed"
    assert checked.bad == "up" and checked.delta > 0
    # the same run against itself: every change is exactly zero, and reads unchanged
    same = compare_audits(before, before, REGISTRIES.metrics)
    assert {c.verdict for c in same.changes if c.checked} == {"unchanged"}
    assert "the same checkpoint" in same.notes[0]


def test_other_images_fall_back_to_the_recorded_intervals_and_say_so():
    checks = (("kurtosis_mean", {"min": 1.0}, {}),)
    before = _with_hashes(make_result("a", checks=checks), prefix="x")
    after = _with_hashes(make_result("a", checks=checks, seed=5), prefix="y")
    for r, (lo, hi) in ((before, (10.0, 12.0)), (after, (30.0, 34.0))):
        r.layers["representation"].intervals["kurtosis_mean"] = iv(lo, hi)
    comp = compare_audits(after, before, REGISTRIES.metrics)
    (checked,) = [c for c in comp.changes if c.checked]
    assert checked.basis == "from the recorded intervals (unpaired)"
    assert "probe images differ" in " ".join(comp.notes)
    assert checked.bad == "down" and checked.verdict in ("improved", "inconclusive")
    unchecked = [c for c in comp.changes if not c.checked]
    assert unchecked and all(c.basis.startswith("no interval") for c in unchecked)


def test_the_margin_of_a_check_reads_small_changes_as_unchanged():
    checks = (("kurtosis_mean", {"max": 1000.0}, {}),)
    before = _with_hashes(make_result("a", checks=checks))
    after = _rescaled(before, 101.0)      # a small move up
    after = dataclasses.replace(after, checks=[dataclasses.replace(before.checks[0], margin=50.0,
                                value=after.layers["representation"].metrics["kurtosis_mean"].value)])
    (checked,) = [c for c in compare_audits(after, before, REGISTRIES.metrics).changes if c.checked]
    assert checked.margin == 50.0 and checked.verdict == "unchanged", checked


def test_the_record_form_reads_back():
    before = _with_hashes(make_result("a"))
    comp = compare_audits(_rescaled(before, 300.0), before, REGISTRIES.metrics, key="audits/a.yaml::a",
                          reference_label="v1")
    back = comparison_from_json(comparison_to_json(comp))
    assert back.audit == "a" and back.key == "audits/a.yaml::a" and back.reference == "v1"
    assert [(c.metric, c.verdict, c.checked) for c in back.changes] == [(c.metric, c.verdict, c.checked)
                                                                        for c in comp.changes]
    for a, b in zip(comp.changes, back.changes):
        assert a.delta == pytest.approx(b.delta) and (a.interval is None) == (b.interval is None)


def test_compare_runs_says_which_audit_the_reference_lacks():
    comps = compare_runs([make_result("a"), make_result("b")], [make_result("a")], REGISTRIES.metrics)
    assert [c.skipped for c in comps][1].startswith("the reference record holds no audit")
    assert not comps[0].skipped


def test_a_change_s_delta_is_the_difference():
    c = Change("l", "m", {}, True, 3.0, 1.0, None, "no interval", "inconclusive")
    assert c.delta == 2.0 and math.isfinite(c.delta)


# ---- the spec keys ---------------------------------------------------------------------------------------------

SPEC = """\
model: {source: timm, name: vit_tiny_patch16_224, checkpoint: w.safetensors}
data: {path: photos}
layers: [representation]
"""


def _problems(tmp_path, text):
    from pytest_robustaudit.errors import SpecError
    from pytest_robustaudit.spec import load_spec

    (tmp_path / "photos").mkdir(exist_ok=True)
    (tmp_path / "photos" / "a.jpg").write_bytes(b"not decoded at load time")
    (tmp_path / "w.safetensors").write_bytes(b"")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    try:
        return load_spec(path, REGISTRIES), ""
    except SpecError as error:
        return None, str(error)


@pytest.mark.parametrize("checks, reference, expected", [
    ("kurtosis_mean: {max: 5, margin: -1}", "", "margin: must not be negative"),
    ("kurtosis_mean: {max: 5, margin: lots}", "", "margin"),
    ("kurtosis_mean: {max_delta: 1}", "reference: {history: ''}", "reference.history: is empty"),
    ("kurtosis_mean: {max_delta: 1}", "reference: {history: last, entry: x}", "reference.entry: only applies"),
    ("kurtosis_mean: {max_delta: 1}", "reference: {history: last, baseline: b.json}", "exactly one of"),
    ("kurtosis_mean: {max_delta: 1}", "reference: {history: 5}", "reference.history"),
])
def test_spec_keys_of_the_history_are_checked(tmp_path, checks, reference, expected):
    spec, error = _problems(tmp_path, SPEC + reference + "\nchecks:\n  " + checks + "\n")
    assert spec is None and expected in error, error
    assert "s.yaml" in error


def test_a_history_reference_and_a_margin_load(tmp_path):
    spec, error = _problems(tmp_path, SPEC + "reference: {history: v1.2}\nchecks:\n"
                                             "  kurtosis_mean: {max_delta: 1, margin: 0.5}\n")
    assert not error, error
    assert spec.reference.history == "v1.2" and spec.checks[0].margin == 0.5


def test_an_unpaired_change_is_centred_on_the_values_compared():
    """A recorded interval may carry another point value (beside a check at other parameters, rounded in a
    record): the change's interval is centred on the change of the values themselves."""
    checks = (("kurtosis_mean", {"min": 1.0}, {}),)
    before = _with_hashes(make_result("a", checks=checks), prefix="x")
    after = _with_hashes(make_result("a", checks=checks, seed=5), prefix="y")
    before.layers["representation"].intervals["kurtosis_mean"] = iv(10.0, 12.0, value=500.0)
    after.layers["representation"].intervals["kurtosis_mean"] = iv(30.0, 34.0, value=-500.0)
    (checked,) = [c for c in compare_audits(after, before, REGISTRIES.metrics).changes if c.checked]
    assert checked.interval.low < checked.delta < checked.interval.high
    assert checked.interval.value == checked.delta


def _diff(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pytest_robustaudit", "diff", *args], capture_output=True, text=True)


def test_diff_reads_older_records_and_refuses_a_mismatch(tmp_path):
    import json

    from pytest_robustaudit.results.record import write_record

    checks = (("kurtosis_mean", {"max": 1000.0}, {}),)
    before = _with_hashes(make_result("a", checks=checks))
    after = _rescaled(before, 1000.0)
    after = dataclasses.replace(after, checks=[dataclasses.replace(before.checks[0],
                                value=after.layers["representation"].metrics["kurtosis_mean"].value)])
    write_record([before], tmp_path / "before.json", {"label": "v1"})
    write_record([after], tmp_path / "after.json", {"label": "v2"})
    old = json.loads((tmp_path / "before.json").read_text())     # as schema 3 wrote it: no margin, no label
    old["schema_version"] = 3
    old["run"].pop("label")
    for audit in old["audits"]:
        for check in audit["checks"]:
            for key in ("margin", "basis", "nodeid", "status"):
                check.pop(key, None)
    (tmp_path / "old.json").write_text(json.dumps(old))
    done = _diff(str(tmp_path / "old.json"), str(tmp_path / "after.json"), "--markdown", str(tmp_path / "d.md"))
    assert done.returncode == 1, done.stderr
    assert "REGRESSED" in done.stdout and "paired by image (40 images)" in done.stdout
    assert "regressed" in (tmp_path / "d.md").read_text()
    assert _diff(str(tmp_path / "after.json"), str(tmp_path / "after.json")).returncode == 0
    write_record([make_result("other")], tmp_path / "other.json")
    mismatch = _diff(str(tmp_path / "before.json"), str(tmp_path / "other.json"))
    assert mismatch.returncode == 2 and "no audit of the same name" in mismatch.stderr
    newer = dict(old, schema_version=99)
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    refused = _diff(str(tmp_path / "newer.json"), str(tmp_path / "after.json"))
    assert refused.returncode == 2 and "newer" in refused.stderr and "Traceback" not in refused.stderr


def test_the_markdown_block_stands_apart_from_the_summary_it_follows():
    from pytest_robustaudit.report.changes import changes_markdown

    before = _with_hashes(make_result("a"))
    text = changes_markdown([compare_audits(_rescaled(before, 300.0), before, REGISTRIES.metrics)])
    assert text.startswith("\n## Change from the reference release\n\n| audit |")
    assert changes_markdown([]) == ""


def test_between_two_bounds_a_move_across_the_middle_never_reads_improved():
    from pytest_robustaudit.analyse.compare import crosses_middle

    check = CheckOutcome("m", "l", 0.9, 0.0, 1.0, True, "")
    assert crosses_middle(check, 0.45, 0.9) and not crosses_middle(check, 0.45, 0.3)
    # 0.45 -> 0.9: now 0.1 under the max: toward the bound now nearer, whole interval above 0: regressed
    assert gate_verdict(iv(0.40, 0.50), 0.45, "up", 0.0, crossed=True) == "regressed"
    # 0.45 -> 0.55: the room to the bounds did not shrink: inconclusive, never improved
    assert gate_verdict(iv(-0.2, -0.05), -0.1, "up", 0.0, crossed=True) == "inconclusive"


def test_exact_values_on_both_sides_compare_exactly():
    checks = (("kurtosis_mean", {"min": 1.0}, {}),)
    before = _with_hashes(make_result("a", checks=checks), prefix="x")
    after = _with_hashes(make_result("a", checks=checks, seed=5), prefix="y")
    for r in (before, after):
        value = r.layers["representation"].metrics["kurtosis_mean"].value
        r.layers["representation"].intervals["kurtosis_mean"] = Interval(value, value, value, 0.95, "exact",
                                                                         exact=True)
    (checked,) = [c for c in compare_audits(after, before, REGISTRIES.metrics).changes if c.checked]
    assert checked.basis == "exact on both sides" and checked.interval.low == checked.interval.high == checked.delta
    assert checked.verdict == ("improved" if checked.delta > 0 else "regressed")


def test_unreadable_levels_and_missing_values_are_said_not_raised():
    checks = (("kurtosis_mean", {"min": 1.0}, {}), ("outlier_count", {"max": 5.0}, {"factor": 100.0}))
    before = _with_hashes(make_result("a", checks=(checks[0],)), prefix="x")
    after = _with_hashes(make_result("a", checks=checks, seed=5), prefix="y")
    before.layers["representation"].intervals["kurtosis_mean"] = iv(10.0, 12.0)
    after.layers["representation"].intervals["kurtosis_mean"] = dataclasses.replace(iv(30.0, 34.0), level=1.0)
    comp = compare_audits(after, before, REGISTRIES.metrics)
    (kurtosis,) = [c for c in comp.changes if c.checked and c.metric == "kurtosis_mean"]
    assert kurtosis.interval is None and kurtosis.verdict == "inconclusive"
    assert "outlier_count (factor=100) @ representation not compared: the reference has no value" in " ".join(comp.notes)
    bare = compare_audits(make_result("a"), make_result("a", seed=4), REGISTRIES.metrics)
    assert "keeps no image hashes" in " ".join(bare.notes)


def test_diff_uses_each_audit_s_own_level_as_its_run_did(tmp_path):
    """Records whose intervals are at 90% (ini audit_confidence 0.9): diff reads them at 90%, as the run's
    own --audit-compare did, so both say the same."""
    from pytest_robustaudit.analyse.compare import interval_level
    from pytest_robustaudit.results.record import read_record, write_record

    checks = (("kurtosis_mean", {"min": 1.0}, {}),)
    before = _with_hashes(make_result("a", checks=checks), prefix="x")
    after = _with_hashes(make_result("a", checks=checks, seed=5), prefix="y")
    before.layers["representation"].intervals["kurtosis_mean"] = dataclasses.replace(iv(10.0, 12.0), level=0.9)
    after.layers["representation"].intervals["kurtosis_mean"] = dataclasses.replace(iv(30.0, 34.0), level=0.9)
    write_record([before], tmp_path / "b.json")
    write_record([after], tmp_path / "a.json")
    _, (b,) = read_record(tmp_path / "b.json")
    _, (a,) = read_record(tmp_path / "a.json")
    in_run = compare_audits(a, b, REGISTRIES.metrics, level=interval_level(a))
    (by_diff,) = compare_runs([a], [b], REGISTRIES.metrics)
    assert interval_level(a) == 0.9
    assert [(c.interval.low, c.interval.high, c.verdict) for c in in_run.changes if c.checked] == \
        [(c.interval.low, c.interval.high, c.verdict) for c in by_diff.changes if c.checked]


def test_hand_edited_comparison_and_series_do_not_break_the_page():
    from pytest_robustaudit.report import render_report

    run = {"comparison": {"audits": [{"audit": "a", "changes": [{"metric": "m"}]}, 5]},
           "history": {"series": [{"metric": "m", "params": [1], "points": [{"value": 1e308, "label": "v1"},
                                                                             {"value": 2.0, "label": "v2"}]},
                                  {"metric": "n", "points": 5}]}}
    page = render_report([make_result("a")], REGISTRIES.metrics, run)
    assert 'id="trends"' in page
