"""Hostile inputs end cleanly at each stage: a located problem or a skipped image, never a hang or a traceback.

Tests that would block for ever if their fix regressed (a FIFO opened) run the call in a daemon
thread with a deadline, and on a miss open the FIFO's other end so the blocked reader returns.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from pytest_robustaudit.errors import AuditError, CheckpointError, DataError, SpecError, describe_error
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.spec import load_spec
from pytest_robustaudit.spec.yamlsource import MAX_NODES, load_doc

@pytest.fixture(scope="module")
def registries():
    return standalone()


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8), (i * 90, 20, 30)).save(tmp_path / "images" / f"im{i}.png")
    (tmp_path / "f.py").write_text("def build():\n    raise RuntimeError\n")
    return tmp_path


def problems(folder: Path, text: str, registries) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(folder / "spec.yaml", registries, text=text)
    return str(caught.value)


def finishes(call, *, fifo: Path | None = None, seconds: float = 20.0):
    """``call()``'s value, or a test failure if it is still running after ``seconds`` (a FIFO is unblocked)."""
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(value=_catch(call)), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:   # let the blocked open() return, so the thread ends
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"still running after {seconds} s (it blocks: the fix regressed)")
    value = box["value"]
    if isinstance(value, _Raised):
        raise value.error
    return value


class _Raised:
    def __init__(self, error):
        self.error = error


def _catch(call):
    try:
        return call()
    except BaseException as error:  # noqa: BLE001 - handed back to the test's thread
        return _Raised(error)


# ---- YAML: alias bombs, nesting, unreadable scalars ------------------------------------------


def test_alias_bomb_is_refused_quickly_with_the_limit(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):   # 10**9 values once expanded; about 400 bytes of YAML
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("model: *a8")
    started = time.perf_counter()
    doc, found = load_doc(tmp_path / "bomb.yaml", text="\n".join(lines) + "\n")
    assert time.perf_counter() - started < 5
    assert doc.data is None and len(found) == 1
    assert f"expands to more than {MAX_NODES} values" in found[0].message
    assert "aliases" in found[0].message and found[0].line is not None


def test_deep_nesting_and_recursive_aliases_are_located_problems(tmp_path):
    started = time.perf_counter()
    for text in ("model: " + "[" * 200_000 + "]" * 200_000 + "\n",   # refused before PyYAML's slow scanner
                 "".join("  " * i + f"k{i}:\n" for i in range(60)),   # block nesting, deeper than specs nest
                 "".join("  " * i + f"k{i}:\n" for i in range(1200)),  # deep enough to exhaust the parser's stack
                 "model: &a [1, *a]\n"):                              # an alias inside its own anchor
        doc, found = load_doc(tmp_path / "deep.yaml", text=text)
        assert doc.data is None and len(found) == 1, text[:40]
        assert "nest" in found[0].message, found[0]
    assert time.perf_counter() - started < 10


def test_a_scalar_yaml_cannot_construct_is_a_problem_at_its_key(tmp_path):
    doc, found = load_doc(tmp_path / "s.yaml", text="seed: 2001-13-45\n")
    assert [(p.line, p.key) for p in found] == [(1, "seed")] and "cannot be read" in found[0].message


# ---- values the schema cannot represent -----------------------------------------------------


def spec_with(**keys: str) -> str:
    """FACTORY_SPEC with top-level keys replaced or added (values as flow YAML)."""
    base = {"model": "{source: factory, factory: f.py:build}", "data": "{path: images, batch_size: 2}",
            "device": "cpu", "checks": "{kurtosis_mean: {min: 0}}"}
    base.update(keys)
    return "".join(f"{k}: {v}\n" for k, v in base.items())


@pytest.mark.parametrize(("keys", "where", "words"), [
    ({"seed": "1234567890123456789012345678901234567890"}, "seed", "out of range"),
    ({"seed": "4294967296"}, "seed", "at most 4294967295"),
    ({"data": "{path: images, batch_size: 99999999999}"}, "data.batch_size", "at most 65536"),
    ({"checks": "{kurtosis_mean: {min: .inf}}"}, "checks.kurtosis_mean.min", "not a finite number"),
    ({"checks": "{kurtosis_mean: {max: -.inf}}"}, "checks.kurtosis_mean.max", "not a finite number"),
    ({"checks": "{kurtosis_mean: {max: .nan}}"}, "checks.kurtosis_mean.max", "not a finite number"),
    ({"checks": "{kurtosis_mean: {min: 1.0e+999}}"}, "checks.kurtosis_mean.min", "not a finite number"),
    ({"checks": "{outlier_count: {max: 1, factor: .inf}}"}, "checks.outlier_count.factor", "not a finite number"),
])
def test_unrepresentable_values_are_refused_with_their_key(folder, registries, keys, where, words):
    message = problems(folder, spec_with(**keys), registries)
    assert f"{where}: " in message and words in message, message


def test_paths_that_cannot_be_paths_are_problems(folder, registries):
    message = problems(folder, spec_with(data='{path: "a\\0b"}'), registries)
    assert "data.path: " in message and "cannot be used as a path" in message
    os.symlink("loop", folder / "loop")
    message = problems(folder, spec_with(data="{path: loop}"), registries)
    assert "data.path: " in message and "symbolic link" in message


# ---- special files: FIFOs are never opened --------------------------------------------------


def test_a_fifo_as_spec_file_is_named_not_read(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    doc, found = finishes(lambda: load_doc(fifo), fifo=fifo)
    assert doc.data is None and "named pipe (FIFO)" in found[0].message


def test_a_fifo_as_checkpoint_is_named_as_what_it_is(folder, registries):
    from pytest_robustaudit.models.checkpoints import read_state_dict
    from pytest_robustaudit.spec.schema import CheckpointSpec

    fifo = folder / "weights.pt"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match=r"is a named pipe \(FIFO\), not a weights file"):
        finishes(lambda: read_state_dict(CheckpointSpec(fifo)), fifo=fifo)
    text = spec_with(model="{source: factory, factory: f.py:build, checkpoint: weights.pt}")
    message = finishes(lambda: problems(folder, text, registries), fifo=fifo)
    assert "model.checkpoint: 'weights.pt' is a named pipe (FIFO), a file is expected" in message


def test_load_rgb_never_opens_a_fifo_whoever_asks(folder):
    """The store's canary image and the fixtures' probe read images through load_rgb, not only the
    batch decoder: the guard is in load_rgb itself."""
    from pytest_robustaudit.data import load_rgb

    fifo = folder / "images" / "first.jpg"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        finishes(lambda: load_rgb(fifo), fifo=fifo)


def test_a_fifo_among_probe_images_is_a_skipped_image_with_its_reason(folder):
    from pytest_robustaudit.data import discover, iter_batches
    from pytest_robustaudit.spec.schema import DataSpec

    fifo = folder / "images" / "x.jpg"
    os.mkfifo(fifo)
    os.symlink("x.jpg", folder / "images" / "y.jpg")   # a link to it is not opened either
    probe = discover(DataSpec(folder / "images"))
    skipped: list = []
    import torchvision.transforms as T

    batches = finishes(lambda: list(iter_batches(probe, T.ToTensor(), 4, 0, skipped)), fifo=fifo)
    assert sum(len(b[1]) for b in batches) == 2
    assert sorted((s.path.name, s.reason) for s in skipped) == [
        ("x.jpg", "not a regular file (a named pipe (FIFO)), so it is not opened"),
        ("y.jpg", "not a regular file (a named pipe (FIFO)), so it is not opened")]


# ---- probe folders: loops and unreadable folders --------------------------------------------


def test_symlink_loops_in_a_probe_folder_end(folder):
    from pytest_robustaudit.data import discover
    from pytest_robustaudit.spec.schema import DataSpec

    images = folder / "images"
    for name, target in (("a", "."), ("b", ".."), ("c", "a")):
        os.symlink(target, images / name)
    (folder / "other").mkdir()
    os.symlink("../images", folder / "other" / "back")
    os.symlink("../other", images / "d")   # images/d/back/d/back/... : a loop through two folders
    probe = finishes(lambda: discover(DataSpec(images)))
    assert sorted({p.path.resolve().name for p in probe.images}) == ["im0.png", "im1.png"]


def test_an_unreadable_probe_folder_is_a_located_error_not_empty(folder, monkeypatch):
    from pytest_robustaudit.data import discover
    from pytest_robustaudit.spec.schema import DataSpec, Located

    (folder / "images" / "secret").mkdir()
    real = os.scandir

    def scandir(path="."):   # root reads every folder: deny one the way chmod 000 does for others
        if os.fspath(path).endswith("secret"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    where = Located(folder / "spec.yaml", 2, "data")
    with pytest.raises(DataError) as caught:
        discover(DataSpec(folder / "images", where=where))
    assert "cannot list the folder" in caught.value.message and "secret" in caught.value.message
    assert caught.value.where == where and "chmod" in caught.value.fix


# ---- devices --------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["tpu", "cuda:7", "mps", "cuda:x"])
def test_a_device_this_machine_lacks_is_an_audit_error_naming_the_key(device):
    import torch

    from pytest_robustaudit.measure.extract import resolve_device

    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(AuditError, match="'device:' key, or --audit-device"):
        resolve_device(device)


# ---- the session remembers any failure ------------------------------------------------------


class _Counting:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, spec, registries, device=None, reference=None, *more, **options):
        self.calls += 1
        outcome = self.outcomes[min(self.calls, len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _session(monkeypatch, fake):
    from pytest_robustaudit.audit import runner

    monkeypatch.setattr(runner, "run_audit", fake)
    session = runner.AuditSession(standalone())
    spec = type("Spec", (), {"path": Path("/x/spec.yaml"), "reference": None, "device": "cpu"})()
    return session, spec


def test_any_failure_is_remembered_and_raised_again_with_its_own_traceback(monkeypatch):
    fake = _Counting(TimeoutError("Timeout (>1.0s) from pytest-timeout."))
    session, spec = _session(monkeypatch, fake)
    seen = []
    for _ in range(4):
        with pytest.raises(TimeoutError) as caught:
            session.result(spec)
        seen.append(caught.value)
        depth = len(list(__import__("traceback").walk_tb(caught.tb)))
    assert fake.calls == 1 and all(e is seen[0] for e in seen)
    assert depth < 10   # raising it again does not grow its traceback
    message = session.errors()[Path("/x/spec.yaml")]
    assert message.startswith("TimeoutError: Timeout (>1.0s)") and "raised at" in message


def test_a_rerun_retries_an_errored_audit_once_but_never_a_result(monkeypatch):
    fake = _Counting(OSError("download interrupted"), OSError("still down"), "never")
    session, spec = _session(monkeypatch, fake)
    with pytest.raises(OSError, match="interrupted"):
        session.result(spec)
    with pytest.raises(OSError, match="still down"):
        session.result(spec, rerun=True)    # retried once ...
    with pytest.raises(OSError, match="still down"):
        session.result(spec, rerun=True)    # ... and only once
    assert fake.calls == 2

    done = _Counting("a result with failed verdicts")
    session, spec = _session(monkeypatch, done)
    assert session.result(spec) == session.result(spec, rerun=True) and done.calls == 1


def test_keyboard_interrupt_propagates_and_sys_exit_is_an_audit_error(monkeypatch):
    fake = _Counting(KeyboardInterrupt(), "done")
    session, spec = _session(monkeypatch, fake)
    with pytest.raises(KeyboardInterrupt):
        session.result(spec)
    assert session.result(spec) == "done" and fake.calls == 2   # not remembered: Ctrl-C is not an outcome

    session, spec = _session(monkeypatch, _Counting(SystemExit(3)))
    with pytest.raises(AuditError, match=r"called sys.exit\(3\)"):
        session.result(spec)


def test_describe_error_keeps_type_message_and_place_never_a_traceback():
    try:
        raise ValueError("x" * 100_000)
    except ValueError as error:
        text = describe_error(error)
    assert text.startswith("ValueError: xxx") and len(text) < 1000
    assert f"raised at {__file__}:" in text and "Traceback" not in text


# ---- outputs: non-UTF-8 names ---------------------------------------------------------------


def test_non_utf8_names_are_written_escaped_and_read_back_exactly(tmp_path):
    from pytest_robustaudit.atomic import escape_surrogates, write_text_atomic

    name = os.fsdecode(b"caf\xe9.jpg")   # Latin-1 bytes: a lone surrogate in Python
    write_text_atomic(tmp_path / "r.json", json.dumps({"path": name}, ensure_ascii=False))
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["path"] == name
    assert os.fsencode(name) == b"caf\xe9.jpg"
    write_text_atomic(tmp_path / "r.html", f"<p>{name}</p>")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == "<p>caf\\udce9.jpg</p>"
    assert json.loads(escape_surrogates(json.dumps([name], ensure_ascii=False))) == [name]


# ---- collection: what pytest's walk must not enter ------------------------------------------


def test_probe_folders_and_link_loops_are_not_walked_by_collection(tmp_path):
    from pytest_robustaudit.plugin.walk import is_walked_elsewhere, probe_folders

    audits = tmp_path / "audits"
    (audits / "photos" / "cats").mkdir(parents=True)
    (audits / "specs").mkdir()
    (audits / "specs" / "a.yaml").write_text("data: {path: ../photos}\n")
    (audits / "bomb.yaml").write_text("a: &a [*a]\n")   # a broken spec names nothing
    (audits / "tests").mkdir()
    os.symlink("..", audits / "tests" / "up")
    os.symlink("../tests", audits / "specs" / "t")
    os.symlink("../specs", audits / "tests" / "s")      # specs/t/s/t/s/... : a loop through two folders
    probe, holders = probe_folders([audits])
    roots = [audits]
    assert str((audits / "photos").resolve()) in probe
    assert "probe data" in is_walked_elsewhere(audits / "photos", roots, probe, holders)
    assert "probe data" in is_walked_elsewhere(audits / "photos" / "cats", roots, probe, holders)
    assert is_walked_elsewhere(audits / "specs", roots, probe, holders) == ""
    assert is_walked_elsewhere(audits / "tests", roots, probe, holders) == ""
    assert "loop" in is_walked_elsewhere(audits / "tests" / "up", roots, probe, holders)
    assert is_walked_elsewhere(audits / "specs" / "t", roots, probe, holders) == ""
    assert "loop" in is_walked_elsewhere(audits / "specs" / "t" / "s", roots, probe, holders)

    (audits / "here.yaml").write_text("data: .\n")   # images beside the spec: its folder is still walked
    probe, holders = probe_folders([audits])
    assert is_walked_elsewhere(audits / "specs", roots, probe, holders) == ""
    assert "probe data" in is_walked_elsewhere(audits / "tests", roots, probe, holders)
