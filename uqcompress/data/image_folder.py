"""``data=image_folder data.path=DIR``: your own images in torchvision ``ImageFolder`` layout, read with PIL.

Layout: ``DIR/<class>/<image>`` (nested folders inside a class are read too; classes are the folder names in sorted
order, as in ``torchvision.datasets.ImageFolder``). With ``data.split_folders=true`` the layout is
``DIR/<split>/<class>/<image>`` (split = train|val|validation|calibration|test), otherwise fit / calibration / test
are a seeded stratified split (``data.splits``). As ``ood=image_folder`` a flat folder of images is accepted too.

Any size, grayscale or RGB: ``data.channels`` 1 | 3 converts every image (null = auto, which refuses a folder that
mixes gray and colour images); ``data.image_size`` (int or [h, w]) resizes (null = all images must share one size).
``data.max_per_class`` reads only that many images per class (seeded), for a quick look at a big folder.

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from uqcompress.data import load_dataset
    >>> root = Path(tempfile.mkdtemp())
    >>> for c in ("cat", "dog"):
    ...     (root / c).mkdir()
    ...     for i in range(10):
    ...         Image.fromarray(np.full((12, 16), 25 * i, np.uint8)).save(root / c / f"{i}.png")
    >>> d = load_dataset({"name": "image_folder", "path": str(root), "image_size": 8}, seed=0)
    >>> d.image_shape, d.class_names, {k: len(s) for k, s in d.splits.items()}
    ((1, 8, 8), ['cat', 'dog'], {'fit': 12, 'calibration': 4, 'test': 4})
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from uqcompress.data import DATASETS, declare
from uqcompress.data.base import DataBundle, count, flag
from uqcompress.data.generic import SPLIT_ALIASES, build_bundle, is_ood, user_path

log = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_GRAY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}
_HIGH_BIT_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N"}


def image_channels(img: Any) -> int:
    """1 for grayscale PIL modes (L, LA, 1, I;16, ...), 3 for the rest (RGB, RGBA, P, CMYK, ...)."""
    return 1 if img.mode in _GRAY_MODES else 3


def image_to_array(img: Any, channels: int) -> np.ndarray:
    """A PIL image as float32 (C, H, W) in [0, 1] with ``channels`` channels (16-bit gray scaled by 65535)."""
    if img.mode in _HIGH_BIT_MODES:
        a = np.asarray(img, dtype=np.float32)
        if img.mode != "F":
            a = a / 65535.0
        a = np.clip(a, 0.0, 1.0)[None]
        return np.repeat(a, 3, axis=0) if channels == 3 else a
    a = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    return a[None] if channels == 1 else a.transpose(2, 0, 1)


def parse_size(value: Any) -> tuple[int, int] | None:
    """``data.image_size``: null, an int (square) or [h, w]."""
    if value is None:
        return None
    if isinstance(value, int) and value > 0:
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"data.image_size={value!r} is not a positive int or [height, width]")


def parse_channels(value: Any) -> int | None:
    if value in (None, "auto"):
        return None
    if value in (1, 3):
        return int(value)
    raise ValueError(f"data.channels={value!r} is not one of: 1, 3, null (auto)")


def resize_chw(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased) resize of one (C, H, W) array to ``size`` = (h, w)."""
    if a.shape[1:] == size:
        return a
    t = F.interpolate(torch.from_numpy(a)[None], size=size, mode="bilinear", align_corners=False, antialias=True)
    return t[0].clamp_(0.0, 1.0).numpy()


def read_images(files: list[Path], channels: int | None, size: tuple[int, int] | None,
                source: str = "data") -> torch.Tensor:
    """Decode ``files`` into one float32 (N, C, H, W) tensor in [0, 1].

    Refuses (one line naming the file) an unreadable image, mixed channel counts when ``channels`` is None, and
    mixed sizes when ``size`` is None.
    """
    from PIL import Image, UnidentifiedImageError

    arrays: list[np.ndarray] = []
    first: dict[str, tuple[Any, Path]] = {}
    for f in files:
        try:
            with Image.open(f) as img:
                img.load()
                c = image_channels(img)
                if channels is None:
                    seen = first.setdefault("channels", (c, f))
                    if seen[0] != c:
                        raise ValueError(
                            f"{f}: image has {c} channel(s) ({img.mode}) but {seen[1]} has {seen[0]}; set "
                            f"{source}.channels=1 or {source}.channels=3 to convert all images")
                a = image_to_array(img, channels or c)
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{f}: cannot read image ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
        if size is None:
            seen = first.setdefault("size", (a.shape[1:], f))
            if seen[0] != a.shape[1:]:
                (h, w), (h0, w0) = a.shape[1:], seen[0]
                raise ValueError(f"{f}: image is {w}x{h} but {seen[1]} is {w0}x{h0}; set {source}.image_size="
                                 f"[{h0},{w0}] (or an int) to resize all images")
        else:
            a = resize_chw(a, size)
        arrays.append(a)
    return torch.from_numpy(np.stack(arrays))


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_classes(root: Path) -> dict[str, list[Path]]:
    """{class name: image files} for ``root/<class>/...``; a class folder without images is refused."""
    out = {}
    for d in _subdirs(root):
        files = _images_in(d, recursive=True)
        if not files:
            raise ValueError(f"{d}: class folder has no images ({', '.join(IMG_EXTENSIONS)})")
        out[d.name] = files
    loose = _images_in(root, recursive=False)
    if out and loose:
        log.warning("%s: ignoring %d image(s) outside the class folders (e.g. %s)", root, len(loose), loose[0].name)
    return out


def _subsample(files: list[Path], n: int | None, rng: np.random.Generator) -> list[Path]:
    if n is None or len(files) <= int(n):
        return files
    return [files[i] for i in sorted(rng.choice(len(files), int(n), replace=False))]


@DATASETS.register("image_folder")
@declare("image", path=None, channels=None, image_size=None, splits=None, split_folders=flag,
         max_per_class=count, num_classes=count, as_ood=flag)
def load_image_folder(cfg: dict, seed: int) -> DataBundle:
    root = user_path(cfg, "image_folder", "DIR")
    if not root.is_dir():
        raise ValueError(f"data=image_folder: '{root}' is a file; expected a folder with one sub-folder per class")
    channels, size = parse_channels(cfg.get("channels")), parse_size(cfg.get("image_size"))
    per_class = cfg.get("max_per_class")
    rng = np.random.default_rng(seed)
    files: list[Path] = []
    labels: list[str] = []
    splits: list[str] = []
    if cfg.get("split_folders"):
        for sd in _subdirs(root):
            split = SPLIT_ALIASES.get(sd.name.lower())
            if split is None:
                raise ValueError(f"{sd}: split folder '{sd.name}' is not one of: train|fit, val|validation|"
                                 "calibration, test (data.split_folders=true)")
            for cls, fs in _scan_classes(sd).items():
                fs = _subsample(fs, per_class, rng)
                files += fs
                labels += [cls] * len(fs)
                splits += [split] * len(fs)
    else:
        for cls, fs in _scan_classes(root).items():
            fs = _subsample(fs, per_class, rng)
            files += fs
            labels += [cls] * len(fs)
    if not files:
        loose = _images_in(root, recursive=False)
        if loose and is_ood(cfg):  # an OOD set may be a flat folder of unlabeled images
            loose = _subsample(loose, per_class, rng)
            x = read_images(loose, channels, size, "ood")
            return build_bundle("image_folder", str(root), "image", x, None, cfg, seed,
                                sources=[str(f) for f in loose])
        raise ValueError(f"data=image_folder: '{root}' has no class folders with images; expected the layout "
                         f"{root}/<class>/<image>.png" + (" (found loose images: that works only as ood=)"
                                                           if loose else ""))
    class_names = sorted(set(labels))
    mapping = {c: i for i, c in enumerate(class_names)}
    y = torch.as_tensor([mapping[c] for c in labels], dtype=torch.long)
    x = read_images(files, channels, size, "ood" if is_ood(cfg) else "data")
    log.info("image_folder %s: %d images, %d classes, shape %s", root, len(files), len(class_names),
             tuple(x.shape[1:]))
    return build_bundle("image_folder", str(root), "image", x, y, cfg, seed,
                        given_splits=np.asarray(splits, dtype=object) if splits else None,
                        class_names=class_names, label_mapping=mapping,
                        info={"source": f"image folder {root} ({len(files)} images)"},
                        sources=[str(f) for f in files])
