"""Writers of tiny datasets in their real on-disk formats (what torchvision reads)."""
import pickle
import struct
from pathlib import Path

import numpy as np


def cifar(root: Path, n_train: int, n_test: int, classes: int, seed: int = 0):
    """CIFAR-10 (classes=10) or CIFAR-100 python pickles. Returns (train_x, train_y, test_x, test_y), NCHW."""
    rng = np.random.default_rng(seed)
    ten = classes == 10
    d = root / ("cifar-10-batches-py" if ten else "cifar-100-python")
    d.mkdir(parents=True)
    key = "labels" if ten else "fine_labels"
    x = rng.integers(0, 256, (n_train + n_test, 3 * 32 * 32), dtype=np.uint8)  # rows: R plane, G plane, B plane
    y = np.arange(n_train + n_test) % classes
    files = [f"data_batch_{i}" for i in range(1, 6)] if ten else ["train"]
    for i, chunk in enumerate(np.array_split(np.arange(n_train), len(files))):
        with open(d / files[i], "wb") as f:
            pickle.dump({"data": x[chunk], key: y[chunk].tolist(), "coarse_labels": [0] * len(chunk)}, f)
    with open(d / ("test_batch" if ten else "test"), "wb") as f:
        pickle.dump({"data": x[n_train:], key: y[n_train:].tolist(), "coarse_labels": [0] * n_test}, f)
    with open(d / ("batches.meta" if ten else "meta"), "wb") as f:
        names = [f"c{i}" for i in range(classes)]
        pickle.dump({"label_names": names} if ten else {"fine_label_names": names}, f)
    nchw = x.reshape(-1, 3, 32, 32)
    return nchw[:n_train], y[:n_train], nchw[n_train:], y[n_train:]


def svhn(root: Path, n_train: int, n_test: int, seed: int = 0):
    """SVHN .mat files: X is 32x32x3xN, y is Nx1 with the digit 0 stored as 10."""
    from scipy.io import savemat
    rng = np.random.default_rng(seed)
    d = root / "svhn"
    d.mkdir(parents=True)
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = np.arange(n) % 10
        savemat(d / f"{split}_32x32.mat", {"X": x.transpose(2, 3, 1, 0), "y": np.where(y == 0, 10, y)[:, None]})
        out += [x, y]
    return tuple(out)


def idx(path: Path, arr: np.ndarray):
    """The IDX format of MNIST: big-endian magic (0x08 = ubyte, ndim), dims, raw bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, arr.ndim))
        f.write(struct.pack(f">{arr.ndim}I", *arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def mnist(root: Path, folder: str, n_train: int, n_test: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    d = root / folder / "raw"
    d.mkdir(parents=True)
    out = []
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n) % 10
        idx(d / f"{split}-images-idx3-ubyte", x)
        idx(d / f"{split}-labels-idx1-ubyte", y)
        out += [x[:, None], y]
    return tuple(out)


def imagefolder(root: Path, classes: int, per_class: int, size: int = 40, seed: int = 0):
    from PIL import Image
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in range(classes):
            d = root / "imagenet" / split / f"n{c:08d}"
            d.mkdir(parents=True)
            for i in range(per_class):
                px = rng.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)
                Image.fromarray(px).save(d / f"img{i}.JPEG", format="JPEG")
