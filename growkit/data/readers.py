"""Dataset files read defensively: every reader checks counts, shapes and label ranges and names the file.

A damaged or mismatched file (random bytes, an empty file, images and labels swapped, 200 images with
150 labels, a label beyond the class count) is a one-line :class:`GrowkitError` before training starts,
never a traceback and never a run on wrong data.

MNIST and Fashion-MNIST are read here, straight from their IDX files (torchvision's reader asserts, so
damage surfaced as tracebacks). CIFAR and SVHN still go through torchvision, which checks each file's
md5 against the official release before unpickling it; their arrays are then checked here as well.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import GrowkitError
from .catalog import DatasetInfo

_IDX_MAGIC = {0x00000801: "labels", 0x00000803: "images"}  # ubyte, 1 dim / ubyte, 3 dims


def source(info: DatasetInfo, root: str | Path) -> str:
    """Where to get a dataset, with the ``<root>`` placeholder filled in."""
    return info.source.replace("<root>", str(root))


def read_idx(path: str | Path, kind: str, size: int | None = None) -> np.ndarray:
    """One IDX file of MNIST's format: ``kind`` "images" ([N, size, size] uint8) or "labels" ([N] uint8).
    The header must say so, and the file must hold exactly the bytes the header announces."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise GrowkitError(f"cannot read {path}: {e.strerror}") from None
    if len(data) < 8:
        raise GrowkitError(f"{path} is {'empty' if not data else 'too short'} ({len(data)} bytes); "
                           "it is not an IDX file: re-download it")
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in _IDX_MAGIC:
        raise GrowkitError(f"{path} is not an IDX {kind} file (magic number {magic:#010x}); re-download it")
    if _IDX_MAGIC[magic] != kind:
        raise GrowkitError(f"{path} holds {_IDX_MAGIC[magic]}, not {kind}: images and labels are swapped")
    ndim = data[3]
    head = 4 + 4 * ndim
    if len(data) < head:
        raise GrowkitError(f"{path} is cut inside its header; re-download it")
    dims = struct.unpack(f">{ndim}I", data[4:head])
    expected = head + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise GrowkitError(f"{path} has {len(data):,} bytes but its header announces {expected:,} "
                           f"({'x'.join(map(str, dims))}); the file is cut or damaged: re-download it")
    arr = np.frombuffer(data, dtype=np.uint8, offset=head).reshape(dims).copy()  # writable, for torch
    if kind == "images" and size is not None and arr.shape[1:] != (size, size):
        raise GrowkitError(f"{path} holds images of {arr.shape[1]}x{arr.shape[2]} pixels, expected "
                           f"{size}x{size}")
    return arr


def check_split(info: DatasetInfo, x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, C, H, W] uint8 and labels [N] in [0, num_classes): the same N, the catalog's shape."""
    y = np.asarray(y)
    want = (info.channels, info.image_size, info.image_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise GrowkitError(f"{where}: images have shape {tuple(x.shape)}, expected [N, "
                           f"{', '.join(map(str, want))}] for {info.name}")
    if y.ndim != 1:
        raise GrowkitError(f"{where}: labels have shape {tuple(y.shape)}, expected one label per image")
    if len(x) != len(y):
        raise GrowkitError(f"{where}: {len(x):,} images but {len(y):,} labels; the files do not belong "
                           "together: re-download them")
    if len(y) == 0:
        raise GrowkitError(f"{where}: no images")
    if not np.issubdtype(y.dtype, np.integer):
        raise GrowkitError(f"{where}: labels are {y.dtype}, not integers")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= info.num_classes:
        bad = int(np.flatnonzero((y < 0) | (y >= info.num_classes))[0])
        raise GrowkitError(f"{where}: label {int(y[bad])} (image {bad}) is outside 0..{info.num_classes - 1} "
                           f"of {info.name}")
    return np.ascontiguousarray(x, dtype=np.uint8), y.astype(np.int64)


def load_mnist(info: DatasetInfo, root: str | Path) -> tuple:
    """(train, test) of MNIST or Fashion-MNIST from the raw IDX files under ``root``."""
    raw = Path(root) / ("MNIST" if info.name == "mnist" else "FashionMNIST") / "raw"
    out = []
    for split in ("train", "t10k"):
        xf, yf = raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte"
        x = read_idx(xf, "images", info.image_size)
        y = read_idx(yf, "labels")
        out.append(check_split(info, x[:, None], y, f"{xf.name} / {yf.name} in {raw}"))
    return tuple(out)


# Leading bytes of the image formats torchvision's ImageFolder accepts.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"II*\x00",
                b"MM\x00*", b"GIF8")


def check_image_headers(paths: list[str], threads: int = 16) -> None:
    """Refuse empty files and files that are no image format at all, naming the first one. Reads 12 bytes
    per file in a thread pool: about as costly as the folder scan itself (1.3 M files for ImageNet).
    Damage deeper inside a file is caught when it is decoded (see :mod:`growkit.data.imagenet`)."""
    from concurrent.futures import ThreadPoolExecutor

    import os
    import stat
    seen: dict[tuple[int, int], str] = {}

    def bad(path: str) -> str | None:
        try:
            st = os.stat(path)
        except OSError as e:
            return f"cannot read {path}: {e.strerror}"
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end: never opened
            return f"{path} is not a regular file"
        first = seen.setdefault((st.st_dev, st.st_ino), path)
        if first != path:  # e.g. a symbolic link loop inside a class folder: counted twice, perhaps mislabelled
            return f"{path} is the same file as {first} (a symbolic link loop or a linked folder?)"
        try:
            with open(path, "rb") as f:
                head = f.read(12)
        except OSError as e:
            return f"cannot read {path}: {e.strerror}"
        if not head:
            return f"{path} is empty"
        if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
            return None
        return f"{path} is not an image file (it starts with {head[:8]!r})"

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for msg in pool.map(bad, paths, chunksize=256):
            if msg:
                raise GrowkitError(f"imagenet: {msg}; remove or replace it")
