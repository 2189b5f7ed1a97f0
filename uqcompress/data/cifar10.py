"""``data=cifar10``: the real CIFAR-10 test set (10,000 32x32 photos, 1,000 per class), from the first present route.

No package registry ships CIFAR-10 images, so this data set is optional: the routes (:data:`SOURCE`), in order:

1. a cached copy: ``<cache>/datasets/cifar10_test.npz`` (decoded once from the BIG-bench archive, checked against
   :data:`SHA256`) or ``<cache>/torchvision/cifar-10-batches-py/test_batch`` (an earlier download, checked against
   torchvision's md5);
2. ``data.root=PATH``: a folder holding ``cifar-10-batches-py/test_batch`` (torchvision's layout) or ``test_batch``,
   or the ``cifar-10-python.tar.gz`` archive itself (md5-checked);
3. the BIG-bench 1.0.0 source archive (``$UQCOMPRESS_BIGBENCH_ARCHIVE`` or ``<cache>/bigbench/``): its task
   ``cifar10_classification/base64`` holds every image as a base64 PNG; decoded once into route 1's npz;
4. torchvision's ``CIFAR10(download=True)`` into ``<cache>/torchvision`` (163 MB, once per machine; needs the
   network; ``data.download=false`` skips it).

When none is present, one line names every route and how to get it. The images keep their source's order (the
BIG-bench file or torchvision's ``test_batch``), and ``info["source"]`` says which served the run.

The 10,000 images are split (stratified, by seed) into ``fit`` / ``calibration`` / ``test`` by the fractions in
``splits``; fractions may sum to less than 1, the rest is left out (a small fit split keeps a CPU run short).

Example:
    >>> from uqcompress.data import load_dataset
    >>> d = load_dataset({"name": "cifar10"}, seed=0)  # doctest: +SKIP
    >>> d.image_shape, {k: len(s) for k, s in d.splits.items()}  # doctest: +SKIP
    ((3, 32, 32), {'fit': 1500, 'calibration': 1000, 'test': 2000})
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import pickle

import numpy as np
import torch

from pathlib import Path

from uqcompress.cache import atomic_write_bytes, cache_dir
from uqcompress.data import DATASETS, declare
from uqcompress.data.base import DataBundle, Split, flag, stratified_split
from uqcompress.data.sources import Route, RouteFailed, Source, register, socket_timeout

log = logging.getLogger(__name__)

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TASK = "cifar10_classification"
TASK_FILE = "base64/task.json"
#: sha256 of the decoded arrays (see :func:`arrays_sha256`): images (10000, 32, 32, 3) uint8 + labels int64
SHA256 = "99b243ca31b08887b9b246470b1d938291ce575a42aa33e267ba6cd3d7554dcb"
DEFAULT_SPLITS = {"fit": 0.15, "calibration": 0.1, "test": 0.2}
#: torchvision's CIFAR-10 python archive and the md5 of its ``test_batch`` (torchvision.datasets.CIFAR10.test_list)
TV_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TV_FOLDER = "cifar-10-batches-py"
TEST_BATCH_MD5 = "40351d587109b95175f43aff81a1287e"
DOWNLOAD_TIMEOUT_S = 30.0


def decode_task_json(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """BIG-bench CIFAR-10 task JSON -> (images (N, 32, 32, 3) uint8 RGB, labels (N,) int64), in file order."""
    from PIL import Image

    task = json.loads(raw)
    xs, ys = [], []
    for i, ex in enumerate(task["examples"]):
        scores = ex["target_scores"]
        if sorted(scores) != sorted(CLASSES) or sorted(scores.values()) != [0] * 9 + [1]:
            raise ValueError(f"CIFAR-10 example {i}: target_scores {scores} is not one-hot over {CLASSES}")
        ys.append(CLASSES.index(max(scores, key=scores.get)))
        with Image.open(io.BytesIO(base64.b64decode(ex["input"]))) as im:
            xs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    if not xs:
        raise ValueError("CIFAR-10 task JSON has no examples")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def arrays_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over shapes, dtypes and bytes of the decoded arrays (what :data:`SHA256` pins)."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(images), np.ascontiguousarray(labels)):
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _npz_path() -> Path:
    return cache_dir() / "datasets" / "cifar10_test.npz"


def _tv_root() -> Path:
    return cache_dir() / "torchvision"


class _BatchUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches are pickles of a dict of numpy arrays, lists and bytes: allow numpy's array
    reconstruction and nothing else (a file the user points to must not run code)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch file")
        return super().find_class(module, name)


def read_test_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's python ``test_batch`` bytes -> (images (N, 32, 32, 3) uint8, labels (N,) int64), md5-checked."""
    digest = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    if digest != TEST_BATCH_MD5:
        raise ValueError(f"{where} has md5 {digest}, not CIFAR-10's test_batch ({TEST_BATCH_MD5})")
    d = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), np.asarray(d[b"labels"], dtype=np.int64)


def _batch_in(folder: Path) -> Path | None:
    for p in (folder / TV_FOLDER / "test_batch", folder / "test_batch"):
        if p.is_file():
            return p
    return None


def _cached(cfg: dict) -> Path | None:
    if _npz_path().is_file():
        return _npz_path()
    return _batch_in(_tv_root())


def _user(cfg: dict) -> Path | None:
    root = cfg.get("root")
    if not root:
        return None
    path = Path(str(root)).expanduser()
    found = path if path.is_file() and path.name.endswith((".tar.gz", ".tgz")) else (
        _batch_in(path) if path.is_dir() else None)
    if found is None:  # the user named it: say what is wrong rather than fall through to another source
        raise FileNotFoundError(f"data.root={root} is neither cifar-10-python.tar.gz nor a folder holding "
                                f"{TV_FOLDER}/test_batch or test_batch")
    return found


def _archive(cfg: dict) -> Path | None:
    from uqcompress.data import bigbench

    env = os.environ.get(bigbench.ENV_VAR)
    path = Path(env).expanduser() if env else bigbench.bigbench_dir() / bigbench.ARCHIVE_NAME
    if env and not path.is_file():
        raise RouteFailed(f"${bigbench.ENV_VAR}={env} is not a file")
    return path if path.is_file() else None


def _download(cfg: dict) -> Path | None:
    if not cfg.get("download", True):
        return None
    from uqcompress._compat import ensure_torchvision

    tv = ensure_torchvision()
    log.warning("downloading CIFAR-10 (163 MB, once per machine) with torchvision into %s", _tv_root())
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S):
            tv.datasets.CIFAR10(str(_tv_root()), train=False, download=True)
    except Exception as e:  # URLError, timeouts, md5 mismatch: this route is not usable now
        first = (str(e).strip().splitlines() or [""])[0]
        raise RouteFailed(f"{type(e).__name__}: {first}") from None
    return _batch_in(_tv_root())


#: where CIFAR-10 comes from, in order (none is a package registry: data=cifar10 is optional)
SOURCE = register(Source("cifar10", "the CIFAR-10 test set, 10,000 32x32 photos", (
    Route("cache", "a copy cached by an earlier run", f"found in <cache>/datasets or <cache>/torchvision",
          _cached, size="31 MB"),
    Route("user", "torchvision's CIFAR-10 files", "set data.root=DIR (holding cifar-10-batches-py/) or "
          "data.root=cifar-10-python.tar.gz", _user, size="163 MB", licence="none stated (Krizhevsky 2009)"),
    Route("archive", "the BIG-bench 1.0.0 source archive", "set $UQCOMPRESS_BIGBENCH_ARCHIVE=PATH (or put "
          "bigbench-1.0.0.tar.gz into <cache>/bigbench/)", _archive, size="358 MB", licence="Apache-2.0"),
    Route("download", "torchvision's download", f"data.download=true on a machine that reaches {TV_URL}",
          _download, size="163 MB", offline=False),
), optional=True))


def cifar10_arrays(cfg: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 CIFAR-10 test images (N, 32, 32, 3) uint8 and labels (N,) int64 from the first present route
    (``cfg``: ``root``, ``download``); a one-line :class:`~uqcompress.data.sources.SourceUnavailable` otherwise."""
    return cifar10_with_source(cfg)[:2]


def cifar10_with_source(cfg: dict | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`cifar10_arrays` plus which route served them (``"<route>: <path>"``, for ``info["source"]``)."""
    route, path = SOURCE.resolve(cfg)
    path = Path(path)
    where = f"{route.what}: {path}"
    if path.suffix == ".npz":
        try:
            with np.load(path) as z:
                x, y = z["images"], z["labels"]
            if arrays_sha256(x, y) == SHA256:
                return x, y, where
            log.warning("cached %s fails its checksum; decoding again", path)
        except (OSError, ValueError, KeyError) as e:
            log.warning("cached %s is unreadable (%s); decoding again", path, e)
        path.unlink(missing_ok=True)
        return cifar10_with_source(cfg)
    if route.kind == "archive":
        return (*_decode_archive(), where)
    if path.name.endswith((".tar.gz", ".tgz")):
        import tarfile

        try:
            with tarfile.open(path, "r:gz") as tar:
                raw = tar.extractfile(f"{TV_FOLDER}/test_batch").read()
        except (tarfile.TarError, KeyError, OSError, EOFError) as e:
            raise ValueError(f"{path} is not a readable cifar-10-python.tar.gz ({type(e).__name__}: {e})") from None
        return (*read_test_batch(raw, f"{path}:{TV_FOLDER}/test_batch"), where)
    return (*read_test_batch(path.read_bytes(), str(path)), where)


def _decode_archive() -> tuple[np.ndarray, np.ndarray]:
    """Decode the BIG-bench task, check it against :data:`SHA256`, cache it as route 1's npz."""
    from uqcompress.data import bigbench

    raw = bigbench.read_task_files(TASK, only=[TASK_FILE])[TASK_FILE]
    x, y = decode_task_json(raw)
    digest = arrays_sha256(x, y)
    if digest != SHA256:
        raise ValueError(f"decoded CIFAR-10 arrays have sha256 {digest}, expected {SHA256} "
                         f"({len(y)} images from {TASK}/{TASK_FILE}); the bigbench archive is not the expected one")
    buf = io.BytesIO()
    np.savez_compressed(buf, images=x, labels=y)
    atomic_write_bytes(_npz_path(), buf.getvalue())
    log.info("decoded %d CIFAR-10 images; cached at %s", len(y), _npz_path())
    return x, y


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def split_indices(labels: np.ndarray, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Stratified split by ``fractions`` (summing to at most 1; the rest is dropped), deterministic in ``seed``."""
    fractions = {k: float(v) for k, v in fractions.items()}
    bad = {k: v for k, v in fractions.items() if not 0 <= v <= 1}
    total = sum(fractions.values())
    if bad or total > 1 + 1e-6:
        raise ValueError(f"cifar10 split fractions {fractions} must each lie in [0, 1] and sum to at most 1")
    rest = max(0.0, 1.0 - total)
    parts = stratified_split(labels, {**fractions, "_rest": rest}, seed)
    parts.pop("_rest")
    return {k: v for k, v in parts.items() if len(v)}  # shuffled: `limit` (head) keeps every class


@DATASETS.register("cifar10")
@declare("image", splits=None, root=None, download=flag)
def load_cifar10(cfg: dict, seed: int) -> DataBundle:
    x, y, source = cifar10_with_source(cfg)
    parts = split_indices(y, dict(cfg.get("splits") or DEFAULT_SPLITS), seed)
    # each split is converted on its own: the 10,000 float images would be 123 MB
    splits = {k: Split(to_tensor(x[idx]), torch.from_numpy(y[idx])) for k, idx in parts.items()}
    return DataBundle("cifar10", "image", 10, splits, class_names=list(CLASSES),
                      info={"source": f"CIFAR-10 test set, {len(y):,} images ({source})"})
