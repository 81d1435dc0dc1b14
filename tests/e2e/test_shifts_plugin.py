"""The whole user path of issue 17 through pytest: specs with `shifts` -> items -> a failure message that
names the measured ER and its bound -> the report's shifts section with the cross-audit correlation."""

from __future__ import annotations

import textwrap

from support import tiny_classifier_factory

FACTORY = tiny_classifier_factory()

SPEC = """\
name: {name}
model: {{source: factory, factory: ../tiny_shift_plugin_factory.py:build, options: {{seed: {seed}}}}}
data: {{path: ../images, batch_size: 6}}
device: cpu
shifts:
  - {{name: imagenet, accuracy: {clean}, source: model card}}
  - {{set: imagenet-r, accuracy: {r}, source: "my run, 2024"}}
  - {{path: ../shifted, name: mine}}
checks:
  effective_robustness: {{min: 0.1, why: robust models sit above the line}}
"""


def test_shifts_spec_to_failure_message_and_report(pytester):
    import numpy as np
    from PIL import Image

    pytester.makepyfile(tiny_shift_plugin_factory=FACTORY)
    rng = np.random.default_rng(0)
    for folder, labels in (("images", "012"), ("shifted", "01")):
        for label in labels:
            (pytester.path / folder / label).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                    pytester.path / folder / label / f"im{i}.png")
    audits = (("robust", 1, 0.6, 0.6), ("middle", 2, 0.7, 0.45), ("standard", 3, 0.76, 0.36))
    pytester.mkdir("audits")
    for name, seed, clean, r in audits:
        (pytester.path / "audits" / f"{name}.yaml").write_text(SPEC.format(name=name, seed=seed, clean=clean, r=r))
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "--audit", "audits")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "effective_robustness" in out and "min 0.1" in out and "robust models sit above the line" in out
    html = (pytester.path / "robustaudit-report.html").read_text()
    assert 'id="shifts"' in html and "er-scatter" in html and "outlier-er-correlation" in html
    assert "my run, 2024" in html and "relation-scatter" in html
    assert html.count('class="audit"') == 3          # each audit's point on the ER scatter
    assert textwrap.dedent("3 models: the Fisher-z interval needs at least 4") in html
