"""Datasets: real on-disk formats, split properties, missing files, on-device augmentation."""
import numpy as np
import pytest
import torch

from growkit import data as D
from growkit.errors import GrowkitError

import formats


@pytest.fixture
def no_md5(monkeypatch):
    """torchvision checks the md5 of the *official* archives; our small files are not those."""
    import os
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.svhn as svhn
    exists_only = lambda fpath, md5=None: os.path.isfile(fpath)  # noqa: E731  (the md5 part skipped)
    monkeypatch.setattr(cifar, "check_integrity", exists_only)
    monkeypatch.setattr(svhn, "check_integrity", exists_only)


def test_digits_splits_are_disjoint_stratified_and_seeded():
    a = D.load("digits", val_fraction=0.2, split_seed=3)
    b = D.load("digits", val_fraction=0.2, split_seed=3)
    c = D.load("digits", val_fraction=0.2, split_seed=4)
    assert a.size("train") + a.size("val") + a.size("test") == 1797
    for split in ("val", "test"):
        assert torch.equal(a.splits[split][1], b.splits[split][1])
    assert not torch.equal(a.splits["val"][1], c.splits["val"][1])
    # stratified: every class's share of val equals its share overall within one image
    from sklearn.datasets import load_digits
    y_all = np.bincount(load_digits().target)
    val_counts = np.bincount(a.splits["val"][1].numpy(), minlength=10)
    assert np.all(np.abs(val_counts - y_all * a.size("val") / 1797) <= 1.5)
    # disjoint: no image appears in two splits (digits has a few exact duplicates; compare counts)
    imgs = {split: {x.numpy().tobytes() for x in xs} for split, (xs, _) in
            [("val", a.splits["val"]), ("test", a.splits["test"]), ("train", (a.train_x, None))]}
    from sklearn.datasets import load_digits as ld
    distinct = len({np.rint(i * 255 / 16).astype(np.uint8)[None].tobytes() for i in ld().images})
    assert len(imgs["val"] | imgs["test"] | imgs["train"]) == distinct


def test_split_indices_fraction_is_a_stratified_subset_disjoint_from_val():
    y = np.repeat(np.arange(10), 100)
    tr, va = D.split_indices(y, 0.1, 1.0, seed=0)
    tr_q, va_q = D.split_indices(y, 0.1, 0.25, seed=0)
    assert np.array_equal(va, va_q)  # the validation split does not depend on the fraction
    assert set(tr_q) <= set(tr) and not set(tr_q) & set(va_q)
    assert len(tr_q) == 225 and set(np.bincount(y[tr_q])) <= {22, 23}  # 90 per class, a quarter of each
    assert np.array_equal(D.split_indices(y, 0.1, 0.25, seed=0)[0], tr_q)
    assert not np.array_equal(D.split_indices(y, 0.1, 0.25, seed=1)[0], tr_q)


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_pickles_are_read_in_channel_planes(tmp_path, no_md5, classes):
    n = 20 * classes
    tx, ty, ex, ey = formats.cifar(tmp_path, n, 30, classes)
    d = D.load(f"cifar{classes}", tmp_path, val_fraction=0.1)
    assert d.info.num_classes == classes and d.size("test") == 30
    assert np.array_equal(d.splits["test"][0].numpy(), ex)  # NCHW, R plane first
    assert np.array_equal(d.splits["test"][1].numpy(), ey)
    assert d.size("train") + d.size("val") == n and d.size("val") == n // 10


def test_a_split_too_small_to_stratify_is_a_clear_error():
    with pytest.raises(GrowkitError, match="cannot split 30 images"):
        D.split_indices(np.arange(30) % 10, 0.1, 1.0, seed=0)


def test_svhn_mat_files_map_label_10_to_0(tmp_path, no_md5):
    tx, ty, ex, ey = formats.svhn(tmp_path, 100, 20)
    d = D.load("svhn", tmp_path)
    assert np.array_equal(d.splits["test"][0].numpy(), ex)
    assert np.array_equal(d.splits["test"][1].numpy(), ey)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST")])
def test_mnist_idx_files(tmp_path, name, folder):
    tx, ty, ex, ey = formats.mnist(tmp_path, folder, 100, 20)
    d = D.load(name, tmp_path)
    assert d.info.image_size == 28 and d.info.flip == (name == "fashionmnist")
    assert np.array_equal(d.splits["test"][0].numpy(), ex)
    assert np.array_equal(d.splits["test"][1].numpy(), ey)


def test_imagenet_imagefolder(tmp_path):
    formats.imagefolder(tmp_path, classes=3, per_class=6)
    d = D.load("imagenet", tmp_path, image_size=32, workers=0, val_fraction=1 / 3)
    assert d.info.num_classes == 3 and d.size("test") == 18 and d.size("val") == 6
    x, y = next(d.train_batches(4, seed=0))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    xv, yv = next(d.eval_batches("test", 5))
    assert xv.shape == (5, 3, 32, 32)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "mnist", "fashionmnist", "imagenet"])
def test_missing_files_name_the_files_and_the_source(tmp_path, name):
    with pytest.raises(GrowkitError) as e:
        D.load(name, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "missing" in msg and str(tmp_path) in msg
    # Python's advice is the call that downloads; the command line's (e.cli) is its flag
    assert "--download" not in msg and ("download=True" in msg) == (name != "imagenet")
    assert ("--download" in e.value.cli) == (name != "imagenet") and "\n" not in e.value.cli


def test_corrupt_files_are_reported_not_substituted(tmp_path):
    formats.cifar(tmp_path, 20, 5, 10)  # md5 check left on: torchvision refuses these files
    with pytest.raises(GrowkitError, match="could not read"):
        D.load("cifar10", tmp_path)


def test_unknown_dataset():
    with pytest.raises(GrowkitError, match="valid: digits"):
        D.load("cifar11")


def test_batch_crop_flip_equals_per_image_crops():
    g = torch.Generator().manual_seed(0)
    xp = torch.randint(0, 256, (7, 3, 12, 12), generator=g, dtype=torch.uint8)
    idx = torch.tensor([6, 0, 3, 3])
    dy, dx = torch.tensor([0, 4, 2, 1]), torch.tensor([4, 0, 1, 3])
    flip = torch.tensor([True, False, True, False])
    from growkit.data.resident import _batch_crop_flip
    got = _batch_crop_flip(xp, idx, dy, dx, flip, (8, 8))
    for b in range(4):
        ref = xp[idx[b], :, dy[b]:dy[b] + 8, dx[b]:dx[b] + 8]
        if flip[b]:
            ref = ref.flip(-1)
        assert torch.equal(got[b], ref)


def test_train_batches_cover_the_split_once_and_are_reproducible():
    d = D.load("digits")
    a = list(d.train_batches(100, seed=5))
    b = list(d.train_batches(100, seed=5))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))
    ys = torch.cat([y for _, y in a])
    assert torch.equal(ys.sort().values, d.train_y.sort().values)
    # normalised with the training statistics
    x = torch.cat([x for x, _ in d.eval_batches("train")])
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-2
