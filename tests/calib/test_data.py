"""Tests of calib/data.py: idx reader, shipped subsets, picks, loaders and the ImageFolder path."""

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from calib import data
from calib.data import (
    CALIB_SUBSET_PATH,
    EVAL_SUBSET_PATH,
    FASHION_MNIST_DIR,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    DataError,
    Preprocessing,
    balanced_pick,
    load_calibration_images,
    load_eval_set,
    read_idx,
)

needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason=f"{FASHION_MNIST_DIR} missing (Debian package dataset-fashion-mnist)",
)


def idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    """An idx file written independently of the reader: magic, big-endian sizes, big-endian data."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


# --------------------------------------------------------------------------------------------------
# idx reader


@pytest.mark.parametrize(
    ("array", "type_code"),
    [
        (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), 0x08),
        (np.array([-3, 0, 7], dtype=np.int8), 0x09),
        (np.array([[-300, 2], [5, 30000]], dtype=np.int16), 0x0B),
        (np.array([-70000, 1], dtype=np.int32), 0x0C),
        (np.array([1.5, -2.25], dtype=np.float32), 0x0D),
        (np.array([[1e300]], dtype=np.float64), 0x0E),
    ],
)
@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_round_trips_every_type(tmp_path, array, type_code, compressed):
    raw = idx_bytes(array, type_code)
    path = tmp_path / "file.idx"
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    result = read_idx(path)
    assert result.dtype == array.dtype and result.dtype.isnative
    np.testing.assert_array_equal(result, array)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda raw: b"\x00\x01" + raw[2:], "not an idx file"),  # wrong magic
        (lambda raw: raw[:2] + b"\x07" + raw[3:], "not an idx file"),  # unknown type byte
        (lambda raw: b"", "not an idx file"),  # empty
        (lambda raw: raw[:6], "truncated idx header"),
        (
            lambda raw: raw[:-1],
            r"truncated: header says shape \(2, 3, 4\) of uint8 \(24 data bytes\), file holds 23",
        ),
        (lambda raw: raw + b"\x00", "has trailing bytes"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, corrupt, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(corrupt(idx_bytes(np.zeros((2, 3, 4), np.uint8), 0x08)))
    with pytest.raises(DataError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_read_idx_rejects_truncated_gzip_and_missing_file(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8) % 7, 0x08))
    path = tmp_path / "cut.idx.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)
    with pytest.raises(DataError, match="no such idx file"):
        read_idx(tmp_path / "absent.idx")


def test_read_fashion_mnist_checks_counts(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8), 0x08))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8), 0x08))
    with pytest.raises(DataError, match="3 images but 2 labels"):
        data.read_fashion_mnist("test", tmp_path)
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        data.read_fashion_mnist("train", tmp_path)


# --------------------------------------------------------------------------------------------------
# Picks and shipped subsets


def test_balanced_pick_interleaves_classes_and_prefixes_agree():
    labels = np.repeat(np.arange(10), [30, 12, 9, 40, 25, 25, 25, 25, 25, 25])
    pick = balanced_pick(labels, 64, seed=4)
    assert len(set(pick.tolist())) == 64
    np.testing.assert_array_equal(labels[pick][:60], np.tile(np.arange(10), 6))
    np.testing.assert_array_equal(balanced_pick(labels, 20, seed=4), pick[:20])
    # Once a class runs out (class 2 has 9 items) the others continue.
    everything = balanced_pick(labels, len(labels), seed=None)
    assert sorted(everything.tolist()) == list(range(len(labels)))
    # Rounds 0-8 take all ten classes (90 items), round 9 the nine classes left, round 10 starts over.
    assert np.bincount(labels[everything[:100]]).tolist() == [11, 10, 9, 10, 10, 10, 10, 10, 10, 10]
    with pytest.raises(DataError, match="cannot pick 301"):
        balanced_pick(labels, 301, seed=0)


def test_shipped_subsets_have_expected_shapes_and_balance():
    for path, count, per_class in (
        (CALIB_SUBSET_PATH, 64, [7] * 4 + [6] * 6),
        (EVAL_SUBSET_PATH, 1000, [100] * 10),
    ):
        with np.load(path, allow_pickle=False) as archive:
            images, labels, indices = archive["images"], archive["labels"], archive["indices"]
        assert images.dtype == np.uint8 and images.shape == (count, 28, 28)
        assert labels.dtype == np.uint8 and labels.shape == (count,)
        assert np.bincount(labels, minlength=10).tolist() == per_class
        assert len(np.unique(indices)) == count
        np.testing.assert_array_equal(labels[:30], np.tile(np.arange(10), 3))  # interleaved by class


def test_load_calibration_images_default():
    images = load_calibration_images()
    assert images.dtype == torch.float32 and images.shape == (32, 1, 28, 28)
    assert torch.equal(load_calibration_images(64)[:32], images)
    with np.load(CALIB_SUBSET_PATH) as archive:
        raw = archive["images"][:32]
    expected = (torch.from_numpy(raw).float() / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    assert torch.equal(images[:, 0], expected)
    with pytest.raises(DataError, match="holds 64"):
        load_calibration_images(65)
    with pytest.raises(DataError, match="positive integer"):
        load_calibration_images(0)


def test_load_eval_set_default_and_limit():
    images, labels = load_eval_set()
    assert images.dtype == torch.float32 and images.shape == (1000, 1, 28, 28)
    assert labels.dtype == torch.int64 and torch.bincount(labels).tolist() == [100] * 10
    # Pixel 0 (the background) maps to -mean/std.
    assert float(images.min()) == pytest.approx(-FASHION_MNIST_MEAN / FASHION_MNIST_STD, abs=1e-6)
    small_images, small_labels = load_eval_set(limit=20)
    assert torch.equal(small_images, images[:20]) and torch.bincount(small_labels).tolist() == [2] * 10


@needs_fashion_mnist
def test_shipped_subsets_are_recreated_byte_for_byte(tmp_path):
    written = data.make_subsets(FASHION_MNIST_DIR, tmp_path)
    assert [path.name for path in written] == [CALIB_SUBSET_PATH.name, EVAL_SUBSET_PATH.name]
    for path, shipped in zip(written, (CALIB_SUBSET_PATH, EVAL_SUBSET_PATH), strict=True):
        assert path.read_bytes() == shipped.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no temp files left
    assert data.main(["--check-subsets"]) == 0


@needs_fashion_mnist
def test_check_subsets_fails_on_a_changed_image(tmp_path, monkeypatch):
    arrays = data.make_subset_arrays("test")
    arrays["images"][3, 10, 10] ^= 1
    changed = tmp_path / EVAL_SUBSET_PATH.name
    data.write_npz_atomically(changed, arrays)
    monkeypatch.setattr(data, "EVAL_SUBSET_PATH", changed)
    assert data.main(["--check-subsets"]) == 1


@needs_fashion_mnist
def test_full_test_set_and_idx_folder_source():
    images, labels = load_eval_set(full=True)
    assert images.shape == (10000, 1, 28, 28) and torch.bincount(labels).tolist() == [1000] * 10
    subset = load_eval_set(FASHION_MNIST_DIR, limit=50)
    shipped = load_eval_set(limit=50)
    assert torch.equal(subset.images, shipped.images) and torch.equal(subset.labels, shipped.labels)
    assert torch.equal(load_calibration_images(40, FASHION_MNIST_DIR), load_calibration_images(40))


def test_full_without_the_debian_files_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_eval_set(full=True)


def test_npz_source_and_its_errors(tmp_path):
    path = tmp_path / "mine.npz"
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.savez_compressed(path, images=images, labels=np.arange(5))
    loaded = load_eval_set(path)
    assert loaded.images.shape == (5, 1, 28, 28) and loaded.labels.tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(load_calibration_images(3, path), loaded.images[:3])
    with pytest.raises(DataError, match="full=True"):
        load_eval_set(path, full=True)
    np.savez_compressed(path, pictures=images)
    with pytest.raises(DataError, match=r"missing array\(s\) \['images', 'labels'\]"):
        load_eval_set(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a .npz file"):
        load_eval_set(path)
    with pytest.raises(DataError, match="no such file or folder"):
        load_eval_set(tmp_path / "absent")


# --------------------------------------------------------------------------------------------------
# ImageFolder trees


def write_image_folder(root, images: np.ndarray, labels: np.ndarray, class_names) -> None:
    for position, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"img{position:04d}.png")


def test_image_folder_of_shipped_images_matches_the_arrays(tmp_path):
    with np.load(EVAL_SUBSET_PATH) as archive:
        images, labels = archive["images"][:30], archive["labels"][:30]  # three of each class
    class_names = [
        f"{label:02d}_{name.replace('/', '-')}" for label, name in enumerate(data.FASHION_MNIST_CLASSES)
    ]
    write_image_folder(tmp_path, images, labels, class_names)
    (tmp_path / ".hidden").mkdir()  # ignored
    (tmp_path / class_names[0] / "notes.txt").write_text("not an image")  # ignored

    loaded = load_eval_set(tmp_path)
    # Files are listed by class, then name, and then interleaved class by class like the subsets,
    # which here restores the original order.
    assert loaded.labels.tolist() == labels.tolist()
    assert torch.equal(loaded.images, load_eval_set(limit=30).images)
    calibration = load_calibration_images(12, tmp_path)
    assert torch.equal(calibration, loaded.images[:12])
    with pytest.raises(DataError, match="asked for 31"):
        load_calibration_images(31, tmp_path)


class FakeTimmModel(torch.nn.Module):
    """Only what Preprocessing.for_model reads: a timm-style pretrained_cfg."""

    def __init__(self, pretrained_cfg):
        super().__init__()
        self.pretrained_cfg = pretrained_cfg


def test_image_folder_for_an_imagenet_style_model_matches_timms_transform(tmp_path):
    import timm.data

    config = {
        "input_size": (3, 20, 20),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
    }
    model = FakeTimmModel(config)
    preprocessing = Preprocessing.for_model(model)
    assert (preprocessing.channels, preprocessing.height, preprocessing.width) == (3, 20, 20)

    rng = np.random.default_rng(1)
    (tmp_path / "n001").mkdir()
    (tmp_path / "n002").mkdir()
    Image.fromarray(rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)).save(tmp_path / "n001" / "wide.png")
    Image.fromarray(rng.integers(0, 256, (37, 25), dtype=np.uint8)).save(tmp_path / "n002" / "tall_gray.png")
    loaded = load_eval_set(tmp_path, model=model)
    assert loaded.images.shape == (2, 3, 20, 20) and loaded.labels.tolist() == [0, 1]

    # timm's own eval transform (torchvision Resize + CenterCrop + ToTensor + Normalize) as reference.
    transform = timm.data.create_transform(**config)
    for position, path in enumerate((tmp_path / "n001" / "wide.png", tmp_path / "n002" / "tall_gray.png")):
        with Image.open(path) as image:
            expected = transform(image.convert("RGB"))
        torch.testing.assert_close(loaded.images[position], expected, rtol=0, atol=1e-6)

    # The shipped Fashion-MNIST arrays go through the same resize for such a model.
    assert load_calibration_images(2, model=model).shape == (2, 3, 20, 20)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        load_eval_set(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_eval_set(tmp_path)
    (tmp_path / "empty_class" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="cannot read image"):
        load_eval_set(tmp_path)


def test_preprocessing_checks_its_fields():
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        Preprocessing(channels=2, height=4, width=4, mean=(0, 0), std=(1, 1))
    with pytest.raises(DataError, match="one mean and std per channel"):
        Preprocessing(channels=3, height=4, width=4, mean=(0,), std=(1,))
    with pytest.raises(DataError, match="interpolation must be one of"):
        Preprocessing(channels=1, height=4, width=4, mean=(0,), std=(1,), interpolation="cubic")
