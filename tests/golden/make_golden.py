"""Golden values: every metric of two audits, written by the last commit before the plan (issue 24) and
compared by tests/e2e/test_golden_values.py with what this code computes on the same inputs.

* ``shipped``: audits/efficientnet_lite0.yaml (real EfficientNet-Lite0 weights, the 11 photos, two layers);
* ``tiny``: a tiny factory classifier (tests/support.py) on 12 generated labelled images with a shifted
  folder, a given ImageNet-R accuracy (so ER is defined), a gaussian_noise corruption and a small
  built-in concept bank: every family of metric reads something.

The inputs are made at run time from seeds (PNG bytes are deterministic), never committed.  Each layer's
value comes with the sha256 of its stored rows: where this machine's rows are the golden run's bytes,
the analyses must agree exactly; elsewhere within rtol 1e-5 (another BLAS, another CPU).  Regenerate
(from a checkout of the commit whose numbers are the reference) with::

    PYTHONPATH=src python tests/golden/make_golden.py tests/golden/golden_values.json
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))

from support import tiny_classifier_factory  # noqa: E402

TINY_SPEC = """\
name: tiny-golden
model: {source: factory, factory: tiny_golden.py:build}
data: {path: images, batch_size: 4}
layers: [representation, module:conv]
device: cpu
shifts:
  - {path: shifted, name: mine, labels: folder}
  - {name: imagenet-r, accuracy: 0.3, source: golden}
  - {corruption: gaussian_noise, severity: 1, seed: 0}
concepts: {builtin: true, seed: 0, images_per_concept: 6, size: 24, null_repeats: 20, names: [colour-red, colour-green, colour-blue, stripes-vertical-coarse, shape-circle]}
checks:
  kurtosis_mean: {min: -100}
"""


def make_inputs(folder: Path) -> dict[str, Path]:
    """The two specs' files under ``folder`` (the shipped spec is read where it lies)."""
    import numpy as np
    from PIL import Image

    (folder / "tiny_golden.py").write_text(tiny_classifier_factory())
    rng = np.random.default_rng(0)
    for root, per_class in (("images", 4), ("shifted", 3)):
        for label in ("0", "1", "2"):
            (folder / root / label).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / root / label / f"{i}.png")
    (folder / "tiny.yaml").write_text(TINY_SPEC)
    return {"shipped": REPO / "audits" / "efficientnet_lite0.yaml", "tiny": folder / "tiny.yaml"}


def audit_everything(spec_path: Path, store_root: Path):
    """The audit with every metric computed (the plan's `measure: all`; before the plan, every run)."""
    from pytest_robustaudit import StoreOptions, load_spec, run_audit, standalone

    registries = standalone()
    spec = load_spec(spec_path, registries)
    options = StoreOptions(store_root)
    if "measure_all" in inspect.signature(run_audit).parameters:
        return run_audit(spec, registries, store=options, measure_all=True), options
    return run_audit(spec, registries, store=options), options


def rows_digest(options, key: str, layer: str) -> str:
    import numpy as np

    entry = options.open().open(key)
    digest = hashlib.sha256()
    for chunk in entry.rows(layer, dtype=np.float32):
        digest.update(np.ascontiguousarray(chunk).tobytes())
    return digest.hexdigest()


def _number(value: float):
    return value if math.isfinite(value) else str(value)


def values_of(result, options) -> dict:
    out = {}
    for name, layer in result.layers.items():
        out[name] = {"rows_sha256": rows_digest(options, result.activations["keys"][name], name),
                     "metrics": {m: {"value": _number(float(v.value)), "version": v.version,
                                     "undefined": v.undefined_reason}
                                 for m, v in layer.metrics.items()}}
    return out


def golden(folder: Path) -> dict:
    specs = make_inputs(folder)
    out = {}
    for name, path in specs.items():
        result, options = audit_everything(path, folder / "store")
        out[name] = values_of(result, options)
    return out


def main() -> None:
    import tempfile

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "golden_values.json"
    with tempfile.TemporaryDirectory() as tmp:
        found = golden(Path(tmp))
    target.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
