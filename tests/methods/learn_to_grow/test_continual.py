"""Task streams and the continual-learning metrics, against hand-made answers."""
import numpy as np
import pytest
import torch

from growkit.methods.learn_to_grow import continual
from growkit.data import DatasetInfo, ResidentData
from growkit.errors import GrowkitError


def test_metrics_on_a_hand_made_matrix():
    R = [[90.0, None, None],
         [80.0, 95.0, None],
         [70.0, 85.0, 99.0]]
    assert continual.avg_acc(R) == pytest.approx((70 + 85 + 99) / 3)
    assert continual.bwt(R) == pytest.approx(((70 - 90) + (85 - 95)) / 2)  # -15
    assert continual.forgetting(R) == pytest.approx(((90 - 70) + (95 - 85)) / 2)  # 15


def test_forgetting_uses_the_best_earlier_accuracy_and_bwt_the_first():
    # Task 0 improves after task 1 (positive transfer) then drops: BWT and forgetting differ.
    R = [[50.0, None, None],
         [60.0, 80.0, None],
         [55.0, 90.0, 70.0]]
    assert continual.bwt(R) == pytest.approx(((55 - 50) + (90 - 80)) / 2)  # 7.5
    assert continual.forgetting(R) == pytest.approx(((60 - 55) + (80 - 90)) / 2)  # -2.5
    s = continual.summary(R)
    assert s["avg_acc"] == pytest.approx(215 / 3)


def test_bad_matrices_are_one_line_errors():
    with pytest.raises(GrowkitError):
        continual.bwt([[1.0, None], [None, 2.0]])
    with pytest.raises(GrowkitError):
        continual.avg_acc([[1.0], [2.0, 3.0]])


def test_class_split():
    assert continual.class_split(10, 5) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert continual.class_split(10, 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    rnd = continual.class_split(10, 5, "random", seed=3)
    assert sorted(c for g in rnd for c in g) == list(range(10)) and rnd != continual.class_split(10, 5)
    for bad in [(10, 3), (10, 1), (10, 0), (10, 10), (4, 4)]:  # (10, 10): one class per task
        with pytest.raises(GrowkitError):
            continual.class_split(*bad)
    with pytest.raises(GrowkitError):
        continual.class_split(10, 5, "sorted")


def _toy(n_classes=4, per=6, pad=1):
    rng = np.random.default_rng(0)
    splits = []
    for s in range(3):
        y = np.repeat(np.arange(n_classes), per)
        x = rng.integers(0, 256, size=(len(y), 1, 4, 4)).astype(np.uint8)
        x[:, 0, 0, 0] = y * 10 + s  # tag each image with its class and split
        splits.append((x, y))
    info = DatasetInfo("toy", n_classes, 1, 4, pad, False, 0.2)
    return ResidentData(info, *splits, augment=True), splits


def test_split_tasks_remaps_labels_and_keeps_every_image_once():
    data, raw = _toy()
    stream = continual.split_tasks(data, [[3, 1], [0, 2]])
    assert len(stream) == 2 and stream.num_classes == [2, 2]
    for t, group in enumerate(stream.classes):
        task = stream.tasks[t]
        assert task.info.num_classes == 2
        for s, split in enumerate(("train", "val", "test")):
            if split == "train":
                x, y = task.train_x[:, :, 1:-1, 1:-1], task.train_y  # remove the crop padding
            else:
                x, y = task.splits[split]
            tags = x[:, 0, 0, 0].long()
            # The tag holds the original class: the remapped label must be its index in the task's class list.
            orig = (tags - s) // 10
            assert sorted(set(orig.tolist())) == sorted(group)
            assert all(group.index(o) == l for o, l in zip(orig.tolist(), y.tolist()))
            assert len(y) == 6 * 2  # every image of the task's two classes, once


def test_split_tasks_rejects_overlapping_classes():
    data, _ = _toy()
    with pytest.raises(GrowkitError):
        continual.split_tasks(data, [[0, 1], [1, 2]])
    with pytest.raises(GrowkitError):
        continual.split_tasks(data, [[0, 9]])


def test_digits_stream_sizes():
    stream = continual.task_stream("digits", 5)
    from growkit import data as gdata
    full = gdata.load("digits")
    assert sum(t.size("train") for t in stream.tasks) == full.size("train")
    assert sum(t.size("test") for t in stream.tasks) == full.size("test")
    assert sum(t.size("val") for t in stream.tasks) == full.size("val")
    x, y = next(stream.tasks[1].eval_batches("test"))
    assert set(y.tolist()) == {0, 1} and torch.isfinite(x).all()
