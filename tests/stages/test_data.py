"""Unit tests of the data stage: discovery, labels, subsets, decoding, skipping, streaming."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torchvision import transforms

from pytest_robustaudit.data import (
    IMAGE_EXTENSIONS,
    ProbeSet,
    SkippedImage,
    describe_skipped,
    discover,
    iter_batches,
    load_rgb,
)
from pytest_robustaudit.errors import DataError
from pytest_robustaudit.spec.schema import DataSpec, Located

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "audits" / "photos"

needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"real test data not found at {SHARED_DATA} (a clone without ../shared/data)",
)

PRE = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32), transforms.ToTensor()])


def _img(path: Path, size=(8, 8), color=(10, 200, 30), mode="RGB", fmt=None, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt, **save)
    return path


def _spec(path: Path, **kw) -> DataSpec:
    return DataSpec(path=path, **kw)


def _run(probe: ProbeSet, batch_size=4, workers=0, pre=PRE):
    skipped: list[SkippedImage] = []
    batches = list(iter_batches(probe, pre, batch_size, workers, skipped=skipped))
    return batches, skipped


# --------------------------------------------------------------------------------------------
# discovery and labels
# --------------------------------------------------------------------------------------------


@pytest.fixture
def class_tree(tmp_path: Path) -> Path:
    root = tmp_path / "probe"
    _img(root / "dog" / "b.jpg")
    _img(root / "dog" / "a.PNG", fmt="PNG")
    _img(root / "cat" / "deep" / "x.jpeg", fmt="JPEG")
    _img(root / "cat" / "c.webp")
    (root / "cat" / "notes.txt").write_text("not an image")
    _img(root / ".hidden" / "h.jpg")
    _img(root / "cat" / "._c.jpg")  # macOS resource fork
    return root


def test_folder_labels_sorted_and_hidden_skipped(class_tree: Path):
    probe = discover(_spec(class_tree, labels="folder"))
    rels = [p.path.relative_to(class_tree).as_posix() for p in probe.images]
    assert rels == ["cat/c.webp", "cat/deep/x.jpeg", "dog/a.PNG", "dog/b.jpg"]
    assert [p.label for p in probe.images] == ["cat", "cat", "dog", "dog"]
    assert probe.classes == ("cat", "dog")
    assert probe.label_mode == "folder"
    assert probe.total_found == 4 and len(probe) == 4
    assert probe.targets == (0, 0, 1, 1)
    assert probe.root == class_tree


def test_auto_picks_folder(class_tree: Path):
    assert discover(_spec(class_tree)).label_mode == "folder"


def test_auto_picks_wnid_then_none(tmp_path: Path):
    _img(tmp_path / "n01440764_tench.jpg")
    _img(tmp_path / "n01443537_goldfish.jpg")
    probe = discover(_spec(tmp_path))
    assert probe.label_mode == "wnid"
    assert [p.label for p in probe.images] == ["n01440764", "n01443537"]
    _img(tmp_path / "holiday.jpg")
    probe = discover(_spec(tmp_path))
    assert probe.label_mode == "none" and probe.classes == () and probe.targets is None
    assert all(p.label is None for p in probe.images)


def test_auto_single_subfolder_is_a_container_not_a_class(tmp_path: Path):
    _img(tmp_path / "val" / "n01440764_1.jpg")
    _img(tmp_path / "val" / "n01443537_2.jpg")
    assert discover(_spec(tmp_path)).label_mode == "wnid"
    _img(tmp_path / "val" / "other.jpg")
    assert discover(_spec(tmp_path)).label_mode == "none"


def test_auto_mixed_root_and_folders(tmp_path: Path):
    _img(tmp_path / "loose.jpg")
    _img(tmp_path / "a" / "x.jpg")
    _img(tmp_path / "b" / "y.jpg")
    assert discover(_spec(tmp_path)).label_mode == "none"


def test_wnid_prefix_must_be_exactly_eight_digits(tmp_path: Path):
    _img(tmp_path / "n01440764.JPEG", fmt="JPEG")
    _img(tmp_path / "n123456789_x.jpg")
    with pytest.raises(DataError, match="n123456789_x.jpg"):
        discover(_spec(tmp_path, labels="wnid"))


def test_none_mode(class_tree: Path):
    probe = discover(_spec(class_tree, labels="none"))
    assert probe.label_mode == "none" and len(probe) == 4 and probe.classes == ()


def test_folder_mode_rejects_loose_images(class_tree: Path):
    _img(class_tree / "loose1.jpg")
    _img(class_tree / "loose2.png")
    with pytest.raises(DataError) as info:
        discover(_spec(class_tree, labels="folder"))
    text = str(info.value)
    assert "loose1.jpg" in text and "loose2.png" in text and "fix:" in text


def test_wnid_mode_names_file_without_prefix(tmp_path: Path):
    _img(tmp_path / "n01440764_tench.jpg")
    _img(tmp_path / "tench.jpg")
    with pytest.raises(DataError, match=r"tench\.jpg[\s\S]*fix:"):
        discover(_spec(tmp_path, labels="wnid"))


def test_missing_folder(tmp_path: Path):
    where = Located(tmp_path / "audit.yaml", 7, "data.path")
    with pytest.raises(DataError) as info:
        discover(_spec(tmp_path / "nope", where=where))
    text = str(info.value)
    assert "audit.yaml:7" in text and str(tmp_path / "nope") in text and "fix:" in text


def test_path_is_a_file(tmp_path: Path):
    f = _img(tmp_path / "one.jpg")
    with pytest.raises(DataError, match="is a file"):
        discover(_spec(f))


def test_empty_folder(tmp_path: Path):
    with pytest.raises(DataError, match=r"no image files found[\s\S]*\.jpg, \.jpeg"):
        discover(_spec(tmp_path))


def test_folder_with_other_extensions_names_them(tmp_path: Path):
    for name in ["a.heic", "b.txt", "c.raw", "d.svg", "e.avif", "f.csv", "g.npy"]:
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(DataError) as info:
        discover(_spec(tmp_path))
    text = str(info.value)
    assert "a.heic" in text and "7 other file(s)" in text and "and 2 more" in text
    for ext in IMAGE_EXTENSIONS:
        assert ext in text


def test_bad_limit(class_tree: Path):
    with pytest.raises(DataError, match="data.limit"):
        discover(_spec(class_tree, limit=0))


def test_bad_label_mode(class_tree: Path):
    with pytest.raises(DataError, match="unknown label mode 'folders'"):
        discover(_spec(class_tree, labels="folders"))


# --------------------------------------------------------------------------------------------
# limit / seed
# --------------------------------------------------------------------------------------------


@pytest.fixture
def many(tmp_path: Path) -> Path:
    for c in range(4):
        for i in range(10):
            _img(tmp_path / f"c{c}" / f"{i:02d}.png", size=(2, 2))
    return tmp_path


def test_limit_seed_deterministic(many: Path):
    full = discover(_spec(many))
    a = discover(_spec(many, limit=7, seed=1))
    b = discover(_spec(many, limit=7, seed=1))
    c = discover(_spec(many, limit=7, seed=2))
    assert a == b
    assert a.images != c.images
    assert len(a) == 7 and a.total_found == 40
    keys = [p.path.relative_to(many).as_posix() for p in a.images]
    assert keys == sorted(keys)
    assert set(a.images) <= set(full.images)
    assert a.classes == full.classes  # class index does not depend on the subset
    # the documented rule, spelled out
    import random

    expected = sorted(random.Random(1).sample(list(full.images), 7), key=lambda p: p.path)
    assert list(a.images) == expected


@pytest.mark.parametrize("limit", [40, 41, 10_000])
def test_limit_at_or_above_count_keeps_all(many: Path, limit: int):
    assert discover(_spec(many, limit=limit)).images == discover(_spec(many)).images


# --------------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------------


@needs_shared
def test_real_imagenet_samples_wnid_order():
    root = SHARED_DATA / "imagenet-samples"
    probe = discover(_spec(root))
    assert probe.label_mode == "wnid"
    assert len(probe) == probe.total_found == 1000
    labels = [p.label for p in probe.images]
    assert len(set(labels)) == 1000
    # One image per class, sorted files: position == class index == index in classes.
    assert tuple(labels) == probe.classes
    assert probe.targets == tuple(range(1000))
    try:
        import timm.data

        synsets = Path(timm.data.__file__).parent / "_info" / "imagenet_synsets.txt"
        order = synsets.read_text().split()
    except (ImportError, OSError):
        order = None
    if order is not None:
        assert labels == order  # the ImageNet-1k class index order
    assert labels[0] == "n01440764" and labels[-1] == "n15075141"


@needs_shared
def test_real_imagenet_200x5_groups():
    probe = discover(_spec(SHARED_DATA / "imagenet-200x5"))
    assert probe.label_mode == "wnid" and len(probe) == 1000 and len(probe.classes) == 200
    counts = np.bincount(np.asarray(probe.targets))
    assert (counts == 5).all()


@needs_shared
def test_real_images_all_decode_threaded():
    probe = discover(_spec(SHARED_DATA / "imagenet-samples"))
    batches, skipped = _run(probe, batch_size=128, workers=8)
    assert skipped == []
    assert sum(len(ix) for _, ix in batches) == 1000
    assert [i for _, ix in batches for i in ix] == list(range(1000))
    assert batches[0][0].shape == (128, 3, 32, 32)


# --------------------------------------------------------------------------------------------
# decoding and colour modes
# --------------------------------------------------------------------------------------------


def _one(path: Path) -> torch.Tensor:
    probe = discover(_spec(path.parent, labels="none"))
    (batch, idx), = _run(probe)[0]
    return batch[idx.index([p.path for p in probe.images].index(path))]


@pytest.mark.parametrize(
    "name, mode, color, fmt, expected",
    [
        ("grey.png", "L", 128, "PNG", (128, 128, 128)),
        ("bw.png", "1", 1, "PNG", (255, 255, 255)),
        ("cmyk.jpg", "CMYK", (0, 255, 0, 0), "JPEG", (255, 0, 255)),
        ("cmyk.tif", "CMYK", (255, 0, 0, 0), "TIFF", (0, 255, 255)),
        ("rgba_clear.png", "RGBA", (255, 0, 0, 0), "PNG", (255, 255, 255)),
        ("rgba_solid.png", "RGBA", (255, 0, 0, 255), "PNG", (255, 0, 0)),
        ("la_half.png", "LA", (0, 128), "PNG", (127, 127, 127)),
        ("tiny.bmp", "RGB", (1, 2, 3), "BMP", (1, 2, 3)),
        ("ycc.jpg", "RGB", (0, 0, 255), "JPEG", (0, 0, 254)),
    ],
)
def test_modes_convert_to_rgb(tmp_path, name, mode, color, fmt, expected):
    path = _img(tmp_path / name, size=(5, 3), mode=mode, color=color, fmt=fmt)
    rgb = load_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (5, 3)
    got = rgb.getpixel((2, 1))
    assert all(abs(g - e) <= 2 for g, e in zip(got, expected)), got
    t = _one(path)
    assert t.shape == (3, 32, 32)


def test_palette_with_and_without_transparency(tmp_path: Path):
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 1)
    pal.save(tmp_path / "opaque.png")
    pal.save(tmp_path / "clear.png", transparency=0)
    pal.save(tmp_path / "anim.gif", transparency=0)
    opaque = load_rgb(tmp_path / "opaque.png")
    assert opaque.getpixel((1, 1)) == (255, 0, 0) and opaque.getpixel((0, 0)) == (0, 0, 255)
    for name in ["clear.png", "anim.gif"]:
        clear = load_rgb(tmp_path / name)
        assert clear.getpixel((1, 1)) == (255, 255, 255)  # transparent red -> white
        assert clear.getpixel((0, 0)) == (0, 0, 255)


def test_sixteen_bit_and_float_greyscale_are_rescaled(tmp_path: Path):
    Image.fromarray(np.full((4, 4), 32896, np.uint16)).save(tmp_path / "i16.png")
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "white16.png")
    Image.fromarray(np.full((4, 4), 0.25, np.float32)).save(tmp_path / "f.tif")
    Image.fromarray(np.full((4, 4), 100, np.int32)).save(tmp_path / "i32.tif")
    assert Image.open(tmp_path / "i16.png").mode == "I;16"
    assert load_rgb(tmp_path / "i16.png").getpixel((0, 0)) == (128, 128, 128)  # not clipped to 255
    assert load_rgb(tmp_path / "white16.png").getpixel((0, 0)) == (255, 255, 255)
    assert load_rgb(tmp_path / "f.tif").getpixel((0, 0)) == (64, 64, 64)
    assert load_rgb(tmp_path / "i32.tif").getpixel((0, 0)) == (100, 100, 100)


def test_one_pixel_image(tmp_path: Path):
    path = _img(tmp_path / "dot.png", size=(1, 1), color=(255, 0, 0))
    t = _one(path)
    assert t.shape == (3, 32, 32)
    assert torch.allclose(t[0], torch.ones(32, 32)) and t[1:].abs().max() == 0


# --------------------------------------------------------------------------------------------
# skipping bad files
# --------------------------------------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """9 good images and 4 bad ones interleaved (names sort the bad ones into the middle)."""
    rng = np.random.RandomState(0)
    for i in range(9):
        arr = rng.randint(0, 255, (40, 40, 3), np.uint8)
        Image.fromarray(arr).save(tmp_path / f"img{i}.jpg", quality=90)
    (tmp_path / "img2b_text.jpg").write_text("this is not a JPEG at all\n")
    (tmp_path / "img3b_empty.png").write_bytes(b"")
    full = (tmp_path / "img0.jpg").read_bytes()
    (tmp_path / "img4b_truncated.jpg").write_bytes(full[: len(full) // 2])
    Image.fromarray(rng.randint(0, 255, (40, 40, 3), np.uint8)).save(tmp_path / "x.png")
    data = bytearray((tmp_path / "x.png").read_bytes())
    for i in range(200, 260):
        data[i] ^= 0xFF
    (tmp_path / "img5b_corrupt.png").write_bytes(bytes(data))
    (tmp_path / "x.png").unlink()
    return tmp_path


def test_bad_files_are_skipped_and_counted(mixed: Path):
    probe = discover(_spec(mixed, labels="none"))
    assert len(probe) == 13
    batches, skipped = _run(probe, batch_size=4)
    names = {s.path.name: s.reason for s in skipped}
    assert set(names) == {"img2b_text.jpg", "img3b_empty.png", "img4b_truncated.jpg",
                          "img5b_corrupt.png"}
    assert "not an image" in names["img2b_text.jpg"]
    assert "not an image" in names["img3b_empty.png"]
    assert names["img4b_truncated.jpg"].startswith("truncated image file")
    assert "could not decode" in names["img5b_corrupt.png"]
    assert all(str(mixed) not in r for r in names.values())  # short, path-free reasons
    # the rest continues, in full batches
    assert [len(ix) for _, ix in batches] == [4, 4, 1]
    rows = [probe.images[i].path.name for _, ix in batches for i in ix]
    assert rows == [f"img{i}.jpg" for i in range(9)]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    text = describe_skipped(skipped, len(probe))
    assert text.startswith("4 of 13 image(s) skipped") and "img4b_truncated.jpg" in text


def test_decompression_bomb_is_skipped(tmp_path: Path, monkeypatch):
    _img(tmp_path / "small.png", size=(4, 4))
    _img(tmp_path / "huge.png", size=(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    batches, skipped = _run(discover(_spec(tmp_path)))
    assert [s.path.name for s in skipped] == ["huge.png"]
    assert "decompression bomb" in skipped[0].reason
    assert sum(len(ix) for _, ix in batches) == 1


def test_nothing_decodable_is_a_data_error(tmp_path: Path):
    (tmp_path / "a.jpg").write_text("nope")
    (tmp_path / "b.png").write_text("nope")
    skipped: list[SkippedImage] = []
    with pytest.raises(DataError, match=r"none of the 2 probe image\(s\)[\s\S]*a\.jpg"):
        list(iter_batches(discover(_spec(tmp_path)), PRE, 4, skipped=skipped))
    assert len(skipped) == 2


def test_load_truncated_images_set_elsewhere_warns(mixed: Path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.warns(RuntimeWarning, match="LOAD_TRUNCATED_IMAGES"):
        _run(discover(_spec(mixed)))


# --------------------------------------------------------------------------------------------
# threading, streaming, argument checks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 3, 16])
def test_workers_give_identical_batches(mixed: Path, workers: int):
    probe = discover(_spec(mixed))
    serial, skipped0 = _run(probe, batch_size=3, workers=0)
    threaded, skipped1 = _run(probe, batch_size=3, workers=workers)
    assert skipped0 == skipped1
    assert [ix for _, ix in serial] == [ix for _, ix in threaded]
    for (a, _), (b, _) in zip(serial, threaded):
        assert torch.equal(a, b)


class _Counting:
    """A preprocess that counts its calls (thread-safe), to observe how far decoding runs ahead."""

    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, image):
        with self.lock:
            self.calls += 1
        return transforms.functional.to_tensor(image.resize((4, 4)))


@pytest.mark.parametrize("workers", [0, 2])
def test_streams_without_decoding_everything(many: Path, workers: int):
    probe = discover(_spec(many))
    pre = _Counting()
    skipped: list[SkippedImage] = []
    gen = iter_batches(probe, pre, 4, workers, skipped=skipped)
    batch, idx = next(gen)
    assert batch.shape == (4, 3, 4, 4) and idx == [0, 1, 2, 3]
    assert pre.calls <= 4 + 4 + 1  # one batch handed out, at most one more in flight
    gen.close()  # an early stop must not hang or leak threads
    assert pre.calls < len(probe)


def test_skipped_list_is_required(many: Path):
    with pytest.raises(TypeError, match="skipped"):
        next(iter_batches(discover(_spec(many)), PRE, 4))


@pytest.mark.parametrize("bs", [0, -1, "auto", 2.0])
def test_bad_batch_size(many: Path, bs):
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_batches(discover(_spec(many)), PRE, bs, skipped=[]))


def test_preprocess_must_return_chw_tensor(many: Path):
    with pytest.raises(TypeError, match=r"\[3, H, W\]"):
        next(iter_batches(discover(_spec(many)), lambda im: np.asarray(im), 4, skipped=[]))


def test_preprocess_sizes_must_agree(tmp_path: Path):
    _img(tmp_path / "a.png", size=(4, 4))
    _img(tmp_path / "b.png", size=(8, 8))
    with pytest.raises(ValueError, match="fixed size"):
        list(iter_batches(discover(_spec(tmp_path)), transforms.ToTensor(), 4, skipped=[]))


def test_preprocess_errors_propagate(many: Path):
    def broken(image):
        raise RuntimeError("bug in transform")

    with pytest.raises(RuntimeError, match="bug in transform"):
        next(iter_batches(discover(_spec(many)), broken, 4, skipped=[]))


# --------------------------------------------------------------------------------------------
# the probe photos the project ships
# --------------------------------------------------------------------------------------------


def test_shipped_probe_photos_decode_and_are_documented():
    probe = discover(_spec(PHOTOS, labels="none"))
    assert 8 <= len(probe) <= 16
    batches, skipped = _run(probe, batch_size=8, workers=2)
    assert skipped == []
    sources = (PHOTOS / "SOURCES.md").read_text()
    docs = (REPO / "docs" / "data.md").read_text()
    for image in probe.images:
        assert image.path.name in sources and image.path.name in docs
        with Image.open(image.path) as im:
            assert im.format == "JPEG" and im.mode in ("RGB", "L") and min(im.size) == 256
    total = sum(p.stat().st_size for p in PHOTOS.iterdir())
    assert total < 400_000
