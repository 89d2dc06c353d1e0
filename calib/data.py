"""Images for calibration and evaluation: shipped Fashion-MNIST subsets, idx files, ImageFolder trees.

Sources (the ``source`` argument of :func:`load_calibration_images` and :func:`load_eval_set`)
----------------------------------------------------------------------------------------------
``None``
    The subsets shipped in ``calib/assets/`` so that nothing is downloaded and no system package is
    needed: ``fmnist_calib.npz`` (64 images of the Fashion-MNIST TRAIN split) and ``fmnist_eval.npz``
    (1000 images of the TEST split, 100 per class). Both are fixed-seed, class-balanced picks (not the
    first N images) made by :func:`make_subsets` from Debian's ``dataset-fashion-mnist`` files, and
    ``python -m calib.data --make-subsets`` recreates them byte for byte. With ``full=True``,
    :func:`load_eval_set` reads the whole 10,000-image test split from ``/usr/share/datasets/``.
a folder holding Fashion-MNIST idx files (``train-images-idx3-ubyte[.gz]`` ...)
    The same picks made from those files (or the whole test split with ``full=True``).
a ``.npz`` file
    Arrays ``images`` (uint8, ``[N, H, W]`` or ``[N, H, W, C]``) and ``labels`` (``[N]``), in order.
a folder of class sub-folders (ImageFolder layout, e.g. ImageNet's ``val/n01440764/*.JPEG``)
    Labels are the positions of the sub-folder names in sorted order (which is ImageNet's class
    index for WordNet-id folders); images are read with Pillow, resized and center-cropped to the
    model's input (see :class:`Preprocessing`).

Order: every pick is interleaved class by class (image ``k`` has class ``k mod 10`` while every
class still has images), so any prefix is balanced to within one image per class: the first 20
evaluation images hold two of each class.

Normalization: without a model, images are prepared for the shipped tiny model,
``x = (pixel / 255 - 0.2860) / 0.3530`` in float32, where 0.2860 and 0.3530 are the mean and
standard deviation of all Fashion-MNIST training pixels scaled to [0, 1] (0.28604 and 0.35302).
With ``model=``, the model's timm ``pretrained_cfg`` decides input size, channels, mean, std,
crop fraction and interpolation.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import math
import os
import sys
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
CALIB_SUBSET_PATH = ASSETS_DIR / "fmnist_calib.npz"
EVAL_SUBSET_PATH = ASSETS_DIR / "fmnist_eval.npz"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530

CALIB_SUBSET_SIZE = 64
EVAL_SUBSET_SIZE = 1000
CALIB_SUBSET_SEED = 0
EVAL_SUBSET_SEED = 1

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# idx type byte -> element type; multi-byte types are big-endian on disk.
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_RESAMPLING_NAMES = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
_IDX_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
# A fixed zip timestamp (the earliest zip can store) so regenerated subsets are byte-identical.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class DataError(ValueError):
    """A data file or folder is missing or malformed; the message names the file and the problem."""


class LabelledImages(NamedTuple):
    """Model-ready images and their labels.

    Attributes
    ----------
    images : torch.Tensor
        float32, ``[N, C, H, W]``, normalized.
    labels : torch.Tensor
        int64, ``[N]``, class indices.
    """

    images: torch.Tensor
    labels: torch.Tensor


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How uint8 images become model inputs (timm's eval transform: resize, center crop, normalize).

    Parameters
    ----------
    channels : int
        1 (images converted to grayscale) or 3 (converted to RGB).
    height, width : int
        Model input size.
    mean, std : tuple of float
        Per-channel normalization of pixels scaled to [0, 1]; one value per channel.
    crop_pct : float
        Fraction of the resized image kept by the center crop (timm: resize to ``size / crop_pct``).
    interpolation : str
        Pillow resampling filter name: ``"bilinear"``, ``"bicubic"``, ``"nearest"``, ``"lanczos"``,
        ``"box"`` or ``"hamming"``.
    """

    channels: int
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 1.0
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise DataError(f"Preprocessing.channels must be 1 or 3, not {self.channels!r}")
        if self.height < 1 or self.width < 1:
            raise DataError(f"Preprocessing size must be positive, not {self.height}x{self.width}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise DataError(
                f"Preprocessing needs one mean and std per channel ({self.channels}), "
                f"not mean={self.mean!r} std={self.std!r}"
            )
        if not 0.0 < self.crop_pct <= 1.0:
            raise DataError(f"Preprocessing.crop_pct must be in (0, 1], not {self.crop_pct!r}")
        if self.interpolation not in _RESAMPLING_NAMES:
            raise DataError(
                f"Preprocessing.interpolation must be one of {', '.join(_RESAMPLING_NAMES)}, "
                f"not {self.interpolation!r}"
            )

    @classmethod
    def for_model(cls, model: torch.nn.Module | None) -> Preprocessing:
        """The preprocessing a timm model expects, from its ``pretrained_cfg``.

        ``None`` gives :data:`FASHION_MNIST_PREPROCESSING` (the shipped tiny model's).
        """
        if model is None:
            return FASHION_MNIST_PREPROCESSING
        from timm.data import resolve_data_config

        config = resolve_data_config(model=model)
        channels, height, width = config["input_size"]
        return cls(
            channels=int(channels),
            height=int(height),
            width=int(width),
            mean=tuple(float(m) for m in config["mean"]),
            std=tuple(float(s) for s in config["std"]),
            crop_pct=float(config["crop_pct"]),
            interpolation=str(config["interpolation"]),
        )


FASHION_MNIST_PREPROCESSING = Preprocessing(
    channels=1, height=28, width=28, mean=(FASHION_MNIST_MEAN,), std=(FASHION_MNIST_STD,)
)


# --------------------------------------------------------------------------------------------------
# idx files


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (LeCun's MNIST format), gzip-compressed or not, into a numpy array.

    Parameters
    ----------
    path : path-like
        The file. Compression is detected from the content (gzip magic), not the name.

    Returns
    -------
    numpy.ndarray
        Native-endian array with the shape and element type the header gives.

    Raises
    ------
    DataError
        Missing file, corrupt gzip data, wrong magic, or a data size that disagrees with the header.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such idx file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise DataError(f"{path}: corrupt or truncated gzip data ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an idx file (magic {raw[:4].hex(' ') or 'empty'}; "
            "expected 00 00 <type 08/09/0b/0c/0d/0e> <ndim>)"
        )
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise DataError(
            f"{path}: truncated idx header ({len(raw)} bytes, {ndim} dimensions need {header_bytes})"
        )
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    count = math.prod(shape)
    data_bytes = len(raw) - header_bytes
    if data_bytes != count * dtype.itemsize:
        problem = "truncated" if data_bytes < count * dtype.itemsize else "has trailing bytes"
        raise DataError(
            f"{path}: {problem}: header says shape {shape} of {dtype.name} "
            f"({count * dtype.itemsize} data bytes), file holds {data_bytes}"
        )
    array = np.frombuffer(raw, dtype, count=count, offset=header_bytes).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _find_idx_file(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root}: no {stem}[.gz] (expected Fashion-MNIST idx files)")


def is_idx_folder(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a Fashion-MNIST/MNIST test split in idx format."""
    root = Path(root)
    return any((root / f"t10k-images-idx3-ubyte{suffix}").is_file() for suffix in ("", ".gz"))


def read_fashion_mnist(
    split: str, root: str | os.PathLike = FASHION_MNIST_DIR
) -> tuple[np.ndarray, np.ndarray]:
    """One split of Fashion-MNIST (or MNIST) from idx files.

    Parameters
    ----------
    split : {"train", "test"}
    root : path-like
        Folder with ``train-images-idx3-ubyte[.gz]`` etc. Default: Debian's
        ``dataset-fashion-mnist`` location.

    Returns
    -------
    images : numpy.ndarray
        uint8, ``[N, 28, 28]``.
    labels : numpy.ndarray
        uint8, ``[N]``.
    """
    if split not in _IDX_SPLIT_PREFIX:
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: no such folder; Fashion-MNIST comes from Debian's dataset-fashion-mnist package "
            "(or use the shipped subsets: source=None, full=False)"
        )
    prefix = _IDX_SPLIT_PREFIX[split]
    images_path = _find_idx_file(root, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx_file(root, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(
            f"{images_path}: expected uint8 images [N, H, W], got {images.dtype.name} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected uint8 labels [N], got {labels.dtype.name} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{root}: {split} split has {len(images)} images but {len(labels)} labels")
    return images, labels


# --------------------------------------------------------------------------------------------------
# Picks and the shipped subsets


def balanced_pick(labels: np.ndarray, count: int, seed: int | None) -> np.ndarray:
    """Indices of ``count`` items spread evenly over the classes, interleaved class by class.

    Within each class the items are taken in a fixed-seed random order (``seed`` an int) or in
    their original order (``seed=None``). Position ``k`` of the result takes the ``k // C``-th item
    of a class, classes in ascending label order, so every prefix is balanced to within one item;
    once a class runs out the others continue. The pick for a smaller ``count`` is a prefix of the
    pick for a larger one.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class labels, ``[N]``.
    count : int
        How many indices, at most ``N``.
    seed : int or None
        Seed of the within-class order (numpy ``default_rng``), or ``None`` for the original order.

    Returns
    -------
    numpy.ndarray
        int64 indices into ``labels``, ``[count]``.
    """
    labels = np.asarray(labels)
    if not 0 <= count <= len(labels):
        raise DataError(f"cannot pick {count} items out of {len(labels)}")
    order = np.arange(len(labels)) if seed is None else np.random.default_rng(seed).permutation(len(labels))
    shuffled_labels = labels[order]
    grouped = np.argsort(shuffled_labels, kind="stable")  # by class, keeping the within-class order
    grouped_labels = shuffled_labels[grouped]
    rank_in_class = np.arange(len(labels)) - np.searchsorted(grouped_labels, grouped_labels, side="left")
    interleaved = np.lexsort((grouped_labels, rank_in_class))  # by rank first, then by class
    return order[grouped[interleaved[:count]]].astype(np.int64)


def make_subset_arrays(split: str, root: str | os.PathLike = FASHION_MNIST_DIR) -> dict[str, np.ndarray]:
    """The arrays of one shipped subset, picked afresh from the idx files under ``root``.

    ``split="train"`` gives the calibration subset (64 images, seed 0); ``split="test"`` the
    evaluation subset (1000 images, 100 per class, seed 1). Keys: ``images`` (uint8 ``[N, 28, 28]``),
    ``labels`` (uint8 ``[N]``) and ``indices`` (int64 ``[N]``, positions in the split).
    """
    count, seed = {
        "train": (CALIB_SUBSET_SIZE, CALIB_SUBSET_SEED),
        "test": (EVAL_SUBSET_SIZE, EVAL_SUBSET_SEED),
    }[split]
    images, labels = read_fashion_mnist(split, root)
    indices = balanced_pick(labels, count, seed)
    return {"images": images[indices], "labels": labels[indices], "indices": indices}


def write_npz_atomically(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed ``.npz`` (what ``np.savez_compressed`` writes), atomically.

    ``np.savez_compressed`` stamps each member with the current time, so rewriting identical
    arrays would give a different file (and a spurious git change); this writes the same zip
    layout with a fixed timestamp instead. The file appears under its name only when complete
    (temporary file in the same folder, then ``os.replace``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                member.compress_type = zipfile.ZIP_DEFLATED
                member.external_attr = 0o644 << 16
                with archive.open(member, "w", force_zip64=True) as stream:
                    np.lib.format.write_array(stream, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def make_subsets(
    root: str | os.PathLike = FASHION_MNIST_DIR, out_dir: str | os.PathLike = ASSETS_DIR
) -> list[Path]:
    """Recreate ``fmnist_calib.npz`` and ``fmnist_eval.npz`` from the idx files under ``root``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out_dir = Path(out_dir)
    written = []
    for split, name in (("train", CALIB_SUBSET_PATH.name), ("test", EVAL_SUBSET_PATH.name)):
        path = out_dir / name
        write_npz_atomically(path, make_subset_arrays(split, root))
        written.append(path)
    return written


def read_npz_images(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``images`` (uint8 ``[N, H, W]`` or ``[N, H, W, C]``) and ``labels`` (``[N]``) from a ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .npz file (no zip archive inside)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if {"images", "labels"} <= names:
                images, labels = archive["images"], archive["labels"]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    if not {"images", "labels"} <= names:
        missing = sorted({"images", "labels"} - names)
        raise DataError(f"{path}: missing array(s) {missing} (has {sorted(names)})")
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(
            f"{path}: images must be uint8 [N, H, W] or [N, H, W, C], not {images.dtype.name} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: labels must be integers [{len(images)}], not {labels.dtype.name} {labels.shape}"
        )
    return images, labels


# --------------------------------------------------------------------------------------------------
# ImageFolder trees


def list_image_folder(root: str | os.PathLike) -> tuple[list[Path], np.ndarray, list[str]]:
    """The image files of an ImageFolder-style tree, their labels and the class names.

    Parameters
    ----------
    root : path-like
        A folder of class sub-folders; files with an image extension anywhere below a class
        folder belong to that class. Hidden entries are ignored.

    Returns
    -------
    files : list of pathlib.Path
        Sorted by class, then by path.
    labels : numpy.ndarray
        int64 ``[N]``: the position of the class folder among the sorted class folder names.
    class_names : list of str
        Sorted class folder names.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_names:
        raise DataError(
            f"{root}: no class sub-folders (expected an ImageFolder tree: {root}/<class>/<image>)"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        class_files = sorted(
            path
            for path in (root / name).rglob("*")
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")
        )
        if not class_files:
            raise DataError(f"{root / name}: class folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        files += class_files
        labels += [label] * len(class_files)
    return files, np.array(labels, dtype=np.int64), class_names


def _resampling_filter(name: str) -> int:
    from PIL import Image

    return Image.Resampling[name.upper()]


def _resize_and_crop(image, preprocessing: Preprocessing) -> np.ndarray:
    """timm's eval transform on one Pillow image: convert mode, resize, center crop -> uint8 HWC."""
    image = image.convert("L" if preprocessing.channels == 1 else "RGB")
    target_h, target_w = preprocessing.height, preprocessing.width
    if target_h == target_w:
        # Shorter side to size / crop_pct, keeping the aspect ratio (torchvision Resize(int)).
        scale_size = math.floor(target_h / preprocessing.crop_pct)
        width, height = image.size
        short, long = min(width, height), max(width, height)
        new_long = int(scale_size * long / short)
        new_size = (scale_size, new_long) if width <= height else (new_long, scale_size)
    else:
        new_size = (
            math.floor(target_w / preprocessing.crop_pct),
            math.floor(target_h / preprocessing.crop_pct),
        )
    if image.size != new_size:
        image = image.resize(new_size, _resampling_filter(preprocessing.interpolation))
    width, height = image.size
    if (width, height) != (target_w, target_h):
        if width < target_w or height < target_h:
            raise DataError(f"image of {width}x{height} is smaller than the {target_w}x{target_h} crop")
        left = round((width - target_w) / 2.0)
        top = round((height - target_h) / 2.0)
        image = image.crop((left, top, left + target_w, top + target_h))
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def normalize_images(
    images: np.ndarray, preprocessing: Preprocessing = FASHION_MNIST_PREPROCESSING
) -> torch.Tensor:
    """uint8 images of the model's size to a normalized float32 tensor ``[N, C, H, W]``.

    Computed in float32 as ``(pixel / 255 - mean[c]) / std[c]``.

    Parameters
    ----------
    images : numpy.ndarray
        uint8, ``[N, H, W]`` (one channel) or ``[N, H, W, C]``, already at the model's size.
    preprocessing : Preprocessing
    """
    if images.ndim == 3:
        images = images[..., None]
    expected = (preprocessing.height, preprocessing.width, preprocessing.channels)
    if images.dtype != np.uint8 or images.shape[1:] != expected:
        raise DataError(
            f"normalize_images needs uint8 [N, {', '.join(map(str, expected))}], got {images.shape}"
        )
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(preprocessing.std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((pixels - mean) / std).contiguous()


def preprocess_arrays(
    images: np.ndarray, preprocessing: Preprocessing = FASHION_MNIST_PREPROCESSING
) -> torch.Tensor:
    """uint8 images of any size and channel count (``[N, H, W]`` or ``[N, H, W, C]``) to model input.

    Images already at the model's size and channel count are only normalized; the others go
    through the same convert/resize/crop as ImageFolder files.
    """
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] == (preprocessing.height, preprocessing.width, preprocessing.channels):
        return normalize_images(images, preprocessing)
    from PIL import Image

    prepared = [
        _resize_and_crop(Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image), preprocessing)
        for image in images
    ]
    return normalize_images(_stack(prepared, preprocessing), preprocessing)


def _stack(prepared: list[np.ndarray], preprocessing: Preprocessing) -> np.ndarray:
    """Stack uint8 HWC images; no images give an empty batch of the model's shape."""
    if prepared:
        return np.stack(prepared)
    return np.zeros((0, preprocessing.height, preprocessing.width, preprocessing.channels), np.uint8)


def read_image_files(
    files: Sequence[Path], preprocessing: Preprocessing = FASHION_MNIST_PREPROCESSING
) -> torch.Tensor:
    """Read, convert, resize, center-crop and normalize image files into ``[N, C, H, W]`` float32."""
    from PIL import Image, UnidentifiedImageError

    prepared = []
    for path in files:
        try:
            with Image.open(path) as image:
                prepared.append(_resize_and_crop(image, preprocessing))
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{path}: cannot read image ({error})") from None
    return normalize_images(_stack(prepared, preprocessing), preprocessing)


# --------------------------------------------------------------------------------------------------
# Loaders


def _source_kind(source: str | os.PathLike) -> str:
    path = Path(source)
    if path.is_file() and path.suffix == ".npz":
        return "npz"
    if path.is_dir():
        return "idx" if is_idx_folder(path) else "folder"
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    raise DataError(f"{path}: not a .npz file, a folder of idx files or an ImageFolder tree")


def load_calibration_images(
    n: int = 32, source: str | os.PathLike | None = None, *, model: torch.nn.Module | None = None
) -> torch.Tensor:
    """Unlabelled images for post-training calibration, ready for the model.

    Parameters
    ----------
    n : int
        How many images. The shipped subset holds 64.
    source : path-like or None
        ``None`` (the shipped TRAIN-split subset), a folder of Fashion-MNIST idx files (the same
        balanced pick from its train split), a ``.npz`` (its first ``n`` images) or an ImageFolder
        tree (``n`` images taken class by class in file order). See the module docstring.
    model : torch.nn.Module, optional
        A timm model whose ``pretrained_cfg`` gives the input size, channels and normalization;
        default: the shipped tiny Fashion-MNIST model's.

    Returns
    -------
    torch.Tensor
        float32, ``[n, C, H, W]`` (``[n, 1, 28, 28]`` for the default model).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"n must be a positive integer, not {n!r}")
    preprocessing = Preprocessing.for_model(model)
    kind = "shipped" if source is None else _source_kind(source)
    if kind == "folder":
        files, labels, _ = list_image_folder(source)
        if n > len(files):
            raise DataError(f"{source}: asked for {n} calibration images, the folder holds {len(files)}")
        return read_image_files([files[i] for i in balanced_pick(labels, n, seed=None)], preprocessing)
    if kind == "idx":
        images, labels = read_fashion_mnist("train", source)
        if n > len(images):
            raise DataError(
                f"{source}: asked for {n} calibration images, the train split holds {len(images)}"
            )
        return preprocess_arrays(images[balanced_pick(labels, n, CALIB_SUBSET_SEED)], preprocessing)
    path = CALIB_SUBSET_PATH if kind == "shipped" else Path(source)
    images, _ = read_npz_images(path)
    if n > len(images):
        raise DataError(
            f"{path}: asked for {n} calibration images, it holds {len(images)}; "
            "for more pass source= (an ImageFolder tree, a .npz or a folder of idx files)"
        )
    return preprocess_arrays(images[:n], preprocessing)


def load_eval_set(
    source: str | os.PathLike | None = None,
    full: bool = False,
    *,
    model: torch.nn.Module | None = None,
    limit: int | None = None,
) -> LabelledImages:
    """Labelled images for measuring accuracy, ready for the model.

    Parameters
    ----------
    source : path-like or None
        ``None`` (the shipped 1000-image TEST-split subset, or with ``full=True`` the 10,000-image
        test split from ``/usr/share/datasets/fashion-mnist``), a folder of idx files (the same
        pick from its test split, or all of it with ``full=True``), a ``.npz`` (all of it) or an
        ImageFolder tree (all of it, class by class). See the module docstring.
    full : bool
        The whole Fashion-MNIST test split instead of the shipped subset; only for Fashion-MNIST
        sources (``None`` or an idx folder).
    model : torch.nn.Module, optional
        A timm model whose ``pretrained_cfg`` gives the input size, channels and normalization;
        default: the shipped tiny Fashion-MNIST model's.
    limit : int, optional
        Keep only the first ``limit`` images (class-balanced to within one for the picks and
        folders). Everything returned is held in memory as float32: ImageNet's 50,000 validation
        images at 3x224x224 would take 30 GB, so pass a limit for such trees.

    Returns
    -------
    LabelledImages
        ``images`` float32 ``[N, C, H, W]`` and ``labels`` int64 ``[N]``.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive integer or None, not {limit!r}")
    preprocessing = Preprocessing.for_model(model)
    kind = "shipped" if source is None else _source_kind(source)
    if full and kind not in ("shipped", "idx"):
        raise DataError(f"full=True reads a whole Fashion-MNIST test split; {source} is not an idx folder")
    if kind == "folder":
        files, labels, _ = list_image_folder(source)
        picked = balanced_pick(labels, len(labels) if limit is None else min(limit, len(labels)), seed=None)
        images = read_image_files([files[i] for i in picked], preprocessing)
        return LabelledImages(images, torch.from_numpy(labels[picked]))
    if kind == "shipped" and full:
        images, labels = read_fashion_mnist("test", FASHION_MNIST_DIR)
    elif kind == "idx":
        images, labels = read_fashion_mnist("test", source)
        if not full:
            picked = balanced_pick(labels, min(EVAL_SUBSET_SIZE, len(labels)), EVAL_SUBSET_SEED)
            images, labels = images[picked], labels[picked]
    else:
        images, labels = read_npz_images(EVAL_SUBSET_PATH if kind == "shipped" else source)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return LabelledImages(preprocess_arrays(images, preprocessing), torch.from_numpy(labels.astype(np.int64)))


# --------------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m calib.data",
        description="Make or check the Fashion-MNIST subsets shipped in calib/assets.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--make-subsets", action="store_true", help="(re)write fmnist_calib.npz and fmnist_eval.npz"
    )
    action.add_argument(
        "--check-subsets", action="store_true", help="check the shipped files equal a fresh pick"
    )
    parser.add_argument("--source", default=str(FASHION_MNIST_DIR), help="folder of Fashion-MNIST idx files")
    parser.add_argument("--out-dir", default=str(ASSETS_DIR), help="where --make-subsets writes")
    args = parser.parse_args(argv)
    try:
        if args.make_subsets:
            for path in make_subsets(args.source, args.out_dir):
                images, labels = read_npz_images(path)
                counts = np.bincount(labels, minlength=len(FASHION_MNIST_CLASSES))
                print(
                    f"wrote {path} ({path.stat().st_size} bytes): {len(images)} images, "
                    f"per class {counts.tolist()}"
                )
            return 0
        mismatched = []
        for split, path in (("train", CALIB_SUBSET_PATH), ("test", EVAL_SUBSET_PATH)):
            fresh = make_subset_arrays(split, args.source)
            with np.load(path, allow_pickle=False) as shipped:
                if set(shipped.files) != set(fresh) or not all(
                    np.array_equal(shipped[k], fresh[k]) for k in fresh
                ):
                    mismatched.append(path)
        for path in mismatched:
            print(
                f"error: {path} differs from a fresh pick; run python -m calib.data --make-subsets",
                file=sys.stderr,
            )
        if not mismatched:
            print("shipped subsets match a fresh pick from", args.source)
        return 1 if mismatched else 0
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
