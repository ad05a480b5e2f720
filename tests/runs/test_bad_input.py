"""Bad input never loses a user's files and never traces back.

Every case runs the real command line (``run_cli``) and asserts exit code 2, one line on stderr, no
"Traceback" in stdout or stderr, no ``<root>`` placeholder or ``weights_only`` advice, and the whole
test folder (output directory, data, existing runs) byte-identical before and after (a tree hash).
Then the data-loss cases: a foreign folder survives ``--overwrite``, an old run survives a failing
``--overwrite``, a second process on a run is refused, a kill at every write point is recoverable.

The cases run three at a time, each in a process forked from a server that has torch and growkit imported
(``growkit.cli.main``, as a fresh interpreter runs it; checked against ``run_cli`` below); only the
selected ones run.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

import formats
from conftest import run_cli

HERE = Path(__file__).resolve().parents[1]  # the tests folder
REPO = str(HERE.parent)  # the checkout `growkit figures --repo` names
TINY = ["--depths", "1-1-1", "--epochs", "1", "--batch-size", "64", "--no-progress"]


def tree(root: Path) -> dict:
    """Every entry under ``root`` (hidden ones too): file bytes by sha256, link targets, folders."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            key = str(p.relative_to(root))
            if p.is_symlink():
                out[key] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[key] = "dir"
            elif not p.is_file():  # a FIFO or device: never read (it would block)
                out[key] = f"special:{p.stat().st_mode:o}"
            else:
                out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny finished `train` run, shared (tests copy it before touching it)."""
    out = tmp_path_factory.mktemp("shared") / "run"
    r = run_cli("train", *TINY, "--out", out)
    assert r.returncode == 0, r.stderr
    return out


# ----------------------------------------------------------------------------- case setups
# Each gets the case folder and the shared run; it prepares files and returns extra substitutions.

def s_run(d, fin):
    shutil.copytree(fin, d / "run", symlinks=True)


def s_unfinished(d, fin):
    s_run(d, fin)
    (d / "run" / "result.json").unlink()


def s_file(d, fin):
    (d / "f").write_text("a file, not a folder\n")


def s_foreign(d, fin):
    src = d / "src"
    src.mkdir()
    (src / "config.json").write_text('{"name": "my project", "command": "train"}\n')
    (src / "main.py").write_text("print('precious')\n")


def s_notes(d, fin):
    (d / "run").mkdir()
    (d / "run" / "notes.txt").write_text("mine\n")


def s_symlink(d, fin):
    s_run(d, fin)
    (d / "link").symlink_to(d / "run")


def s_readonly(d, fin):
    (d / "ro").mkdir()
    (d / "ro").chmod(0o500)


def _mnist(d, folder="MNIST", n_train=200, n_test=50):
    formats.mnist(d / "data", folder, n_train, n_test)
    return d / "data" / folder / "raw"


def s_mnist_random(d, fin):
    raw = _mnist(d)
    rng = np.random.default_rng(0)
    for f in raw.iterdir():
        f.write_bytes(rng.integers(0, 256, f.stat().st_size, dtype=np.uint8).tobytes())


def s_fashion_random(d, fin):
    raw = _mnist(d, "FashionMNIST")
    (raw / "train-images-idx3-ubyte").write_bytes(np.random.default_rng(1).bytes(5000))


def s_mnist_empty(d, fin):
    (_mnist(d) / "train-labels-idx1-ubyte").write_bytes(b"")


def s_mnist_swapped(d, fin):
    raw = _mnist(d)
    a, b = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    ab, bb = a.read_bytes(), b.read_bytes()
    a.write_bytes(bb)
    b.write_bytes(ab)


def s_mnist_label_range(d, fin):
    raw = _mnist(d)
    formats.idx(raw / "t10k-labels-idx1-ubyte", np.full(50, 12))


def s_mnist_counts(d, fin):
    raw = _mnist(d)
    formats.idx(raw / "train-labels-idx1-ubyte", np.arange(150) % 10)  # 200 images, 150 labels


def s_mnist_cut(d, fin):
    raw = _mnist(d)
    f = raw / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])


def s_mnist_size(d, fin):
    raw = _mnist(d)
    formats.idx(raw / "train-images-idx3-ubyte", np.zeros((200, 32, 32)))


def s_cifar_damaged(d, fin):
    formats.cifar(d / "data", 20, 10, 10)  # not the official bytes: torchvision's md5 check refuses them


def s_svhn_random(d, fin):
    (d / "data" / "svhn").mkdir(parents=True)
    for f in ("train_32x32.mat", "test_32x32.mat"):
        (d / "data" / "svhn" / f).write_bytes(np.random.default_rng(2).bytes(4000))


def _imagenet(d):
    formats.imagefolder(d / "data", classes=2, per_class=4, size=16)
    return sorted((d / "data" / "imagenet" / "train").rglob("*.JPEG"))


def s_imagenet_garbage(d, fin):
    _imagenet(d)[1].write_bytes(np.random.default_rng(3).bytes(700))


def s_imagenet_empty(d, fin):
    _imagenet(d)[2].write_bytes(b"")


def s_imagenet_truncated(d, fin):
    f = _imagenet(d)[0]
    f.write_bytes(f.read_bytes()[:200])  # a JPEG header, then nothing: fails only when decoded


def s_imagenet_fifo(d, fin):
    f = _imagenet(d)[1]
    f.unlink()
    os.mkfifo(f)  # opening it would wait for a writer forever


def s_imagenet_loop(d, fin):
    imgs = _imagenet(d)
    (imgs[0].parent / "again").symlink_to("..")  # a loop: the class folders seen again under every class


def s_imagenet_train_file(d, fin):
    _imagenet(d)
    shutil.rmtree(d / "data" / "imagenet" / "train")
    (d / "data" / "imagenet" / "train").write_text("a file where the class folders should be\n")


def s_mnist_dev_zero(d, fin):
    f = _mnist(d) / "train-images-idx3-ubyte"
    f.unlink()
    f.symlink_to("/dev/zero")  # endless zeros: reading it would fill the memory


def s_bad_config_json(d, fin):
    s_unfinished(d, fin)
    (d / "run" / "config.json").write_text('{"command": "train", "train": {"epochs": 1,')


def _edit_config(d, fin, fn):
    s_unfinished(d, fin)
    p = d / "run" / "config.json"
    rc = json.loads(p.read_text())
    fn(rc)
    p.write_text(json.dumps(rc))


def s_config_types(d, fin):
    _edit_config(d, fin, lambda rc: rc["train"].update(epochs="1"))


def s_config_inf(d, fin):
    _edit_config(d, fin, lambda rc: rc["train"].update(lr=float("inf")))  # json writes Infinity


def s_config_list(d, fin):
    s_unfinished(d, fin)
    (d / "run" / "config.json").write_text("[1, 2, 3]\n")


def s_config_command(d, fin):
    _edit_config(d, fin, lambda rc: rc.update(command="rm -rf"))


def s_result_garbage(d, fin):
    s_run(d, fin)
    (d / "run" / "result.json").write_text("{not json")


def s_result_types(d, fin):
    s_run(d, fin)
    p = d / "run" / "result.json"
    res = json.loads(p.read_text())
    res["val_acc"] = "high"
    p.write_text(json.dumps(res))


def s_metrics_garbage(d, fin):
    s_unfinished(d, fin)
    p = d / "run" / "metrics.jsonl"
    p.write_text("garbage\n" + p.read_text())


def s_metrics_no_epoch(d, fin):
    s_unfinished(d, fin)
    p = d / "run" / "metrics.jsonl"
    rows = [json.loads(line) for line in p.read_text().splitlines()]
    del rows[0]["epoch"]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))


def s_metrics_interleaved(d, fin):
    s_unfinished(d, fin)
    p = d / "run" / "metrics.jsonl"
    p.write_text(p.read_text() * 2)  # epoch 1 twice: two processes wrote this run


def s_ckpt_foreign(d, fin):
    s_unfinished(d, fin)
    torch.save([torch.zeros(3), {"a": 1}], d / "run" / "checkpoint.pt")


def s_ckpt_random(d, fin):
    s_unfinished(d, fin)
    (d / "run" / "checkpoint.pt").write_bytes(np.random.default_rng(4).bytes(3000))


def s_ckpt_pickle(d, fin):
    import argparse
    s_unfinished(d, fin)
    torch.save({"format": 1, "payload": argparse.Namespace(x=1)}, d / "run" / "checkpoint.pt")


def _edit_ckpt(d, fin, key, fn):
    s_unfinished(d, fin)
    p = d / "run" / "checkpoint.pt"
    raw = torch.load(p, weights_only=True)
    obj = json.loads(raw[key])
    fn(obj)
    raw[key] = json.dumps(obj)
    torch.save(raw, p)


def s_ckpt_other_run(d, fin):
    _edit_ckpt(d, fin, "config_json", lambda rc: rc["train"].update(lr=0.05, seed=9))


def s_ckpt_other_model(d, fin):
    _edit_ckpt(d, fin, "spec_json", lambda spec: spec.update(name="Plain3Net"))


def s_ckpt_nan(d, fin):
    s_unfinished(d, fin)
    p = d / "run" / "checkpoint.pt"
    raw = torch.load(p, weights_only=True)
    raw["model"] = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
                    for k, v in raw["model"].items()}
    torch.save(raw, p)


def s_ckpt_plain_pickle(d, fin):
    import pickle
    s_unfinished(d, fin)
    with open(d / "run" / "checkpoint.pt", "wb") as f:  # pickle's own protocol, not torch.save
        pickle.dump({"format": 2, "model": {"w": [1.0, 2.0]}}, f, protocol=4)


def s_ckpt_extra_key(d, fin):
    s_unfinished(d, fin)
    p = d / "run" / "checkpoint.pt"
    raw = torch.load(p, weights_only=True)
    raw["surprise"] = torch.zeros(2)
    torch.save(raw, p)


def s_ckpt_rng_float(d, fin):
    s_unfinished(d, fin)
    p = d / "run" / "checkpoint.pt"
    raw = torch.load(p, weights_only=True)
    raw["rng"]["torch"] = raw["rng"]["torch"].float()  # a foreign RNG state: right size, wrong type
    torch.save(raw, p)


def _edit_raw(d, fin, fn):
    s_unfinished(d, fin)
    p = d / "run" / "checkpoint.pt"
    raw = torch.load(p, weights_only=True)
    fn(raw)
    torch.save(raw, p)


def s_ckpt_model_list(d, fin):
    _edit_raw(d, fin, lambda raw: raw.update(model=[torch.zeros(2)]))


def s_ckpt_optimizer_state_int(d, fin):
    _edit_raw(d, fin, lambda raw: raw.update(optimizer_state=5))


def s_ckpt_loop_epoch_text(d, fin):
    _edit_ckpt(d, fin, "loop_json", lambda loop: loop.update(epoch="one"))


def s_ckpt_loop_ahead(d, fin):
    _edit_ckpt(d, fin, "loop_json", lambda loop: loop.update(epoch=99))  # metrics.jsonl ends at epoch 1


def s_ckpt_optimizer_kind(d, fin):
    _edit_ckpt(d, fin, "optimizer_json", lambda o: o.update(kind="adam"))  # SGD's momentum read as Adam's


def s_config_types_no_lock(d, fin):
    s_config_types(d, fin)
    (d / "run" / ".growkit-lock").unlink()


def s_recover_refused(d, fin):
    """Damage recover refuses to cut, no lock file yet, and temporary files of both kinds beside it."""
    s_metrics_garbage(d, fin)
    (d / "run" / ".growkit-lock").unlink()
    (d / "run" / "config.json.growkit-tmp").write_text('{"comm')
    (d / "run" / "config.json.tmp").write_text("a user's file\n")


def s_user_tmp_only(d, fin):
    (d / "run").mkdir()
    (d / "run" / ".growkit-run.json").write_text(json.dumps({"growkit_run": 1, "run_id": "0" * 32}))
    (d / "run" / "notes.tmp").write_text("mine\n")


L2G = ["learn-to-grow", "--tasks", "2", "--widths", "4-4-4", "--hidden", "8", "--search-epochs", "1", "--warmup", "0",
       "--train-epochs", "1"]
_L2G_LOCK = threading.Lock()


def _l2g_runs(fin):
    """Two tiny finished learn-to-grow runs (seeds 0 and 3) beside the shared run, made once, when a case asks."""
    runs = [fin.parent / f"l2g-seed{seed}" for seed in (0, 3)]
    with _L2G_LOCK:
        for seed, out in zip((0, 3), runs):
            if not (out / "result.json").exists():
                r = run_cli(*L2G, "--seed", seed, "--out", out)
                assert r.returncode == 0, r.stderr
    return runs


def s_l2g_unfinished(d, fin):
    """A learn-to-grow run killed after its first task: task_0.pt, no task_1.pt, no result.json."""
    shutil.copytree(_l2g_runs(fin)[0], d / "run", symlinks=True)
    (d / "run" / "result.json").unlink()
    (d / "run" / "tasks" / "task_1.pt").unlink()


def s_l2g_foreign_task(d, fin):
    s_l2g_unfinished(d, fin)
    shutil.copy(_l2g_runs(fin)[1] / "tasks" / "task_0.pt", d / "run" / "tasks" / "task_0.pt")  # another run's


def s_l2g_stray_index(d, fin):
    s_l2g_unfinished(d, fin)
    shutil.copy(_l2g_runs(fin)[0] / "tasks" / "task_1.pt", d / "run" / "tasks" / "task_7.pt")  # of 2 tasks


def s_l2g_stray_name(d, fin):
    s_l2g_unfinished(d, fin)
    shutil.copy(d / "run" / "tasks" / "task_0.pt", d / "run" / "tasks" / "task_backup.pt")


def s_l2g_tasks_file(d, fin):
    s_l2g_unfinished(d, fin)
    shutil.rmtree(d / "run" / "tasks")
    (d / "run" / "tasks").write_text("a file where the task checkpoints should be\n")


def s_l2g_task_renamed(d, fin):
    s_l2g_unfinished(d, fin)
    os.rename(d / "run" / "tasks" / "task_0.pt", d / "run" / "tasks" / "task_1.pt")  # task 0's records as task 1's


def _edit_task0(d, fn):
    p = d / "run" / "tasks" / "task_0.pt"
    raw = torch.load(p, weights_only=True)
    fn(raw)
    torch.save(raw, p)


def s_l2g_task_nan(d, fin):
    s_l2g_unfinished(d, fin)
    _edit_task0(d, lambda raw: raw.update(model={k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                                 for k, v in raw["model"].items()}))


def s_l2g_task_other_layers(d, fin):
    def wider(raw):
        spec = json.loads(raw["spec_json"])
        spec["defs"][0]["cout"] = 10 ** 9  # rebuilt as it stands, this would allocate gigabytes
        raw["spec_json"] = json.dumps(spec)
    s_l2g_unfinished(d, fin)
    _edit_task0(d, wider)


def s_l2g_config_edited(d, fin):
    _edit_config_of(d / "run", lambda rc: rc["learn-to-grow"].update(seed=5), setup=lambda: s_l2g_unfinished(d, fin))


def _edit_config_of(run, fn, setup):
    setup()
    p = run / "config.json"
    rc = json.loads(p.read_text())
    fn(rc)
    p.write_text(json.dumps(rc))


def _replay(d, fin, rounds):
    """An adenel-replay run (what `adenel --scratch` nests) interrupted before its first checkpoint, with
    ``rounds`` in its config.json."""
    def edit(rc):
        rc["command"] = "adenel-replay"
        rc["train"].update(model="LeNet5", depths=None, widths=[4, 4, 120, 84])
        rc["adenel-replay"] = {"rounds": rounds, "done_epoch": 2, "seed_width": 4, "finetune_epochs": 1,
                               "finetune_lr": 0.01}
    _edit_config_of(d / "run", edit, setup=lambda: s_unfinished(d, fin))
    for f in ("checkpoint.pt", "metrics.jsonl"):
        (d / "run" / f).unlink()


def s_replay_rounds_ints(d, fin):
    _replay(d, fin, [1, 2])


def s_replay_round_no_grow(d, fin):
    _replay(d, fin, [{"epoch": 1}])


def s_replay_round_group(d, fin):
    _replay(d, fin, [{"epoch": 1, "grow": {"conv9": 2}}])


def s_replay_round_huge(d, fin):
    _replay(d, fin, [{"epoch": 1, "grow": {"conv1": 10 ** 12}}])


def s_locked(d, fin):
    """A live process holds the run's lock, as a running `growkit resume` would."""
    s_unfinished(d, fin)
    return _hold(d, record=True)


def s_locked_stale_record(d, fin):
    """The lock file names a process that has exited (its pid free for reuse); a live process holds the lock
    without having recorded itself yet: a refusal must not name the dead one."""
    import socket
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    s_unfinished(d, fin)
    (d / "run" / ".growkit-lock").write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(),
                                                         "since": "2001-01-01T00:00:00+00:00",
                                                         "command": f"resume {d}/run"}) + "\n")
    return _hold(d, record=False)


def _hold(d, record: bool):
    """A child process that holds the run's lock (``record``: and has written itself into the lock file)."""
    code = ("import sys; from growkit.runs import rundir; lk = rundir.RunLock(sys.argv[1]).acquire(); "
            + ("lk.record('resume ' + sys.argv[1]); " if record else "")
            + "print('locked', flush=True); sys.stdin.read()")
    p = subprocess.Popen([sys.executable, "-c", code, str(d / "run")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    assert p.stdout.readline().strip() == "locked"
    return p


# ----------------------------------------------------------------------------- the cases
# (id, args with {d} = the case folder, setup, a fragment the one line must contain)

T = ["train", *TINY]
A = ["autogrow", "--no-progress", "--finetune", "1"]
OUT = ["--out", "{d}/out"]
CASES = [
    # numbers: non-finite, absurd, beyond int64
    ("lr-inf", [*T, "--lr", "inf", *OUT], None, "lr must be finite"),
    ("lr-nan", [*T, "--lr", "nan", *OUT], None, "lr must be finite"),
    ("lr-negative", [*T, "--lr", "-0.1", *OUT], None, "lr must be >= 0"),
    ("lr-absurd", [*T, "--lr", "1e6", *OUT], None, "at most 10"),
    ("wd-inf", [*T, "--weight-decay", "inf", *OUT], None, "weight_decay must be finite"),
    ("wd-negative", [*T, "--weight-decay", "-1", *OUT], None, "weight_decay must be in"),
    ("momentum-1.5", [*T, "--momentum", "1.5", *OUT], None, "momentum must be in"),
    ("momentum-nan", [*T, "--momentum", "nan", *OUT], None, "momentum must be finite"),
    ("epochs-int64", [*T, "--epochs", "99999999999999999999", *OUT], None, "64-bit"),
    ("epochs-absurd", [*T, "--epochs", "10000000", *OUT], None, "epochs must be > 0 and at most"),
    ("epochs-0", [*T, "--epochs", "0", *OUT], None, "epochs must be > 0"),
    ("seed-int64", [*T, "--seed", "99999999999999999999", *OUT], None, "64-bit"),
    ("seed-negative", [*T, "--seed", "-5", *OUT], None, "seed must be in"),
    ("batch-1", [*T, "--batch-size", "1", *OUT], None, "batch_size must be in"),
    ("fraction-0", [*T, "--fraction", "0", *OUT], None, "fraction must be in"),
    ("fraction-nan", [*T, "--fraction", "nan", *OUT], None, "fraction must be finite"),
    ("val-fraction-1", [*T, "--val-fraction", "1", *OUT], None, "val_fraction must be in"),
    ("milestones-inf", [*T, "--milestones", "0.5,inf", *OUT], None, "milestones must be finite"),
    ("milestones-1.5", [*T, "--milestones", "1.5", *OUT], None, "milestones must be in"),
    ("snapshot-negative", [*T, "--snapshot-every", "-1", *OUT], None, "snapshot_every"),
    ("epochs-text", [*T, "--epochs", "two", *OUT], None, "invalid int value"),
    # models that cannot be built or would not fit
    ("depths-huge", [*T[:1], "--depths", "100000-1-1", "--epochs", "1", *OUT], None, "blocks; at most"),
    ("depths-int64", [*T[:1], "--depths", "99999999999999999999-1-1", "--epochs", "1", *OUT], None, "64-bit"),
    ("depths-zero", [*T[:1], "--depths", "1-0-1", "--epochs", "1", *OUT], None, "depths must be positive"),
    ("vgg-wide", ["train", "--model", "VGG16", "--widths", "100000", "--epochs", "1", *OUT], None, "parameters"),
    ("resnet-wide", ["train", "--widths", "1000000-16-16", "--epochs", "1", *OUT], None, "parameters"),
    ("vgg-overflow", ["train", "--model", "VGG16", "--widths", "1000000000", *OUT], None, "cannot be built"),
    ("model-unknown", [*T, "--model", "ResNet9000", *OUT], None, "unknown model 'ResNet9000'"),
    ("schedule-unknown", [*T, "--schedule", "sawtooth", *OUT], None, "schedule must be one of"),
    ("precision-unknown", [*T, "--precision", "fp8", *OUT], None, "invalid choice"),
    # devices
    ("device-meta", [*T, "--device", "meta", *OUT], None, "'meta' is not supported"),
    ("device-mps", [*T, "--device", "mps", *OUT], None, "'mps' is not supported"),
    ("device-xpu", [*T, "--device", "xpu", *OUT], None, "'xpu' is not supported"),
    ("device-cuda7", [*T, "--device", "cuda:7", *OUT], None, "cuda:7"),
    ("device-banana", [*T, "--device", "banana", *OUT], None, "unknown device"),
    # output paths
    ("out-under-file", [*T, "--out", "{d}/f/run"], s_file, "which is a file"),
    ("out-is-file", [*T, "--out", "{d}/f"], s_file, "not a directory"),
    ("out-proc", [*T, "--out", "/proc/growkit-run"], None, "under /proc"),
    ("out-sys", [*T, "--out", "/sys/growkit-run"], None, "under /sys"),
    ("out-symlink-overwrite", [*T, "--out", "{d}/link", "--overwrite"], s_symlink, "symbolic link"),
    ("out-foreign-config-overwrite", [*T, "--out", "{d}/src", "--overwrite"], s_foreign, "not a growkit run"),
    ("out-foreign-no-overwrite", [*T, "--out", "{d}/run"], s_notes, "not a growkit run"),
    ("out-run-no-overwrite", [*T, "--out", "{d}/run"], s_run, "pass --overwrite"),
    ("out-locked-overwrite", [*T, "--out", "{d}/run", "--overwrite"], s_locked, "in use by pid"),
    ("out-readonly", [*T, "--out", "{d}/ro/run"], s_readonly, "permission denied"),
    # dataset files
    ("mnist-random", [*T, "--dataset", "mnist", "--data-root", "{d}/data", *OUT], s_mnist_random, "IDX"),
    ("fashion-random", [*T, "--dataset", "fashionmnist", "--data-root", "{d}/data", *OUT], s_fashion_random,
     "train-images-idx3-ubyte"),
    ("mnist-empty", [*T, "--dataset", "mnist", "--data-root", "{d}/data", *OUT], s_mnist_empty, "is empty"),
    ("mnist-swapped", [*T, "--dataset", "mnist", "--data-root", "{d}/data", *OUT], s_mnist_swapped, "swapped"),
    ("mnist-label-range", [*T, "--dataset", "mnist", "--data-root", "{d}/data", *OUT], s_mnist_label_range,
     "label 12"),
    ("mnist-200-vs-150", [*T, "--dataset", "mnist", "--data-root", "{d}/data", *OUT], s_mnist_counts,
     "200 images but 150 labels"),
    ("mnist-cut", [*T, "--dataset", "mnist", "--data-root", "{d}/data", *OUT], s_mnist_cut, "cut or damaged"),
    ("mnist-32px", [*T, "--dataset", "mnist", "--data-root", "{d}/data", *OUT], s_mnist_size, "32x32"),
    ("mnist-missing", [*T, "--dataset", "mnist", "--data-root", "{d}/data", *OUT], None, "MNIST/raw/"),
    ("cifar-damaged", [*T, "--dataset", "cifar10", "--data-root", "{d}/data", *OUT], s_cifar_damaged,
     "could not read"),
    ("svhn-random", [*T, "--dataset", "svhn", "--data-root", "{d}/data", *OUT], s_svhn_random, "could not read"),
    ("imagenet-garbage", [*T, "--dataset", "imagenet", "--data-root", "{d}/data", "--val-fraction", "0.5", *OUT],
     s_imagenet_garbage, "not an image file"),
    ("imagenet-empty", [*T, "--dataset", "imagenet", "--data-root", "{d}/data", "--val-fraction", "0.5", *OUT],
     s_imagenet_empty, "is empty"),
    ("imagenet-truncated", [*T, "--dataset", "imagenet", "--data-root", "{d}/data", "--val-fraction", "0.5",
                            "--batch-size", "4", *OUT], s_imagenet_truncated, "cannot decode"),
    ("imagenet-fifo", [*T, "--dataset", "imagenet", "--data-root", "{d}/data", "--val-fraction", "0.5", *OUT],
     s_imagenet_fifo, "not a regular file"),
    ("imagenet-symlink-loop", [*T, "--dataset", "imagenet", "--data-root", "{d}/data", "--val-fraction", "0.5",
                               *OUT], s_imagenet_loop, "same file as"),
    ("imagenet-train-is-a-file", [*T, "--dataset", "imagenet", "--data-root", "{d}/data", "--val-fraction", "0.5",
                                  *OUT], s_imagenet_train_file, "cannot read the ImageFolder tree"),
    ("mnist-dev-zero", [*T, "--dataset", "mnist", "--data-root", "{d}/data", *OUT], s_mnist_dev_zero,
     "not a regular file"),
    ("imagenet-download", [*T, "--dataset", "imagenet", "--download", *OUT], None, "cannot be downloaded"),
    # autogrow
    ("ag-K-int64", [*A, "--K", "99999999999999999999", *OUT], None, "64-bit"),
    ("ag-K-0", [*A, "--K", "0", *OUT], None, "K must be > 0"),
    ("ag-tau-inf", [*A, "--tau", "inf", *OUT], None, "tau must be finite"),
    ("ag-tau-nan", [*A, "--tau", "nan", *OUT], None, "tau must be finite"),
    ("ag-init-std-inf", [*A, "--init-std", "inf", *OUT], None, "init_std must be finite"),
    ("ag-J-absurd", [*A, "--J", "1000000000", *OUT], None, "J must be > 0 and at most"),
    ("ag-max-depth-0", [*A, "--max-depth", "0", *OUT], None, "max_depth must be in"),
    ("ag-finetune-negative", [*A, "--finetune", "-1", *OUT], None, "finetune_epochs must be in"),
    ("ag-max-grow-int64", [*A, "--max-grow-epochs", str(10 ** 30), *OUT], None, "64-bit"),
    ("ag-seed-depths-0", [*A, "--seed-depths", "0-1-1", *OUT], None, "depths must be positive"),
    ("ag-width-net", [*A, "--model", "VGG16", *OUT], None, "AutoGrow grows depth nets"),
    ("ag-device-meta", [*A, "--device", "meta", *OUT], None, "'meta' is not supported"),
    ("ag-lr-inf", [*A, "--lr", "inf", *OUT], None, "lr must be finite"),
    ("ag-out-proc", [*A, "--out", "/proc/self/growkit"], None, "under /proc"),
    # every method's own options get the same generic checks (types, finiteness, int64)
    ("gn-lambda-inf", ["gauss-newton", "--lambda-p", "inf", *OUT], None, "lambda_p must be finite"),
    ("adenel-tau-nan", ["adenel", "--tau", "nan", *OUT], None, "tau must be finite"),
    ("l1-prune-ratio-inf", ["l1-prune", "--ratio", "inf", *OUT], None, "ratio must be finite"),
    ("l2g-cost-inf", ["learn-to-grow", "--cost", "inf", *OUT], None, "cost must be finite"),
    # learn-to-grow gets the shared checks (devices, widths, seeds, epochs, rates) and its own
    ("l2g-device-meta", [*L2G, "--device", "meta", *OUT], None, "'meta' is not supported"),
    ("l2g-device-cuda7", [*L2G, "--device", "cuda:7", *OUT], None, "cuda:7"),
    ("l2g-widths-zero", [*L2G[:4], "0-4-4", *L2G[5:], *OUT], None, "widths must be positive"),
    ("l2g-widths-huge", [*L2G[:4], "100000000-8-8", *L2G[5:], *OUT], None, "parameters"),
    ("l2g-hidden-huge", [*L2G, "--hidden", "100000000000", *OUT], None, "may reach"),
    ("l2g-seed-negative", [*L2G, "--seed", "-1", *OUT], None, "seed must be in"),
    ("l2g-seed-overflow", [*L2G, "--seed", "4000000000000000", *OUT], None, "seed must be in 0..2**30-1"),
    ("l2g-epochs-absurd", [*L2G, "--train-epochs", "99999999999", *OUT], None, "train_epochs must be in"),
    ("l2g-no-epochs", [*L2G, "--search-epochs", "0", "--train-epochs", "0", *OUT], None, "no task would be trained"),
    ("l2g-lr-inf", [*L2G, "--lr", "inf", *OUT], None, "lr must be finite"),
    ("l2g-arch-lr-absurd", [*L2G, "--arch-lr", "1e9", *OUT], None, "arch_lr must be > 0 and at most 10"),
    ("l2g-arch-wd-5", [*L2G, "--arch-weight-decay", "5", *OUT], None, "arch_weight_decay must be in [0, 1)"),
    ("l2g-one-class-per-task", [*L2G, "--tasks", "10", *OUT], None, "one class per task"),
    ("l2g-tasks-uneven", [*L2G, "--tasks", "3", *OUT], None, "do not split into 3 equal tasks"),
    ("l2g-permuted-tasks-absurd", [*L2G, "--stream", "permuted", "--tasks", "100000", *OUT], None,
     "a permuted stream needs 2..100 tasks"),
    # learn-to-grow's resume: only this run's task checkpoints, checked before anything is trained
    ("l2g-resume-foreign-task", ["resume", "{d}/run"], s_l2g_foreign_task, "belongs to another run"),
    ("l2g-resume-config-edited", ["resume", "{d}/run"], s_l2g_config_edited, "belongs to another run"),
    ("l2g-resume-stray-index", ["resume", "{d}/run"], s_l2g_stray_index, "this run has 2 tasks"),
    ("l2g-resume-stray-name", ["resume", "{d}/run"], s_l2g_stray_name, "not a task checkpoint growkit writes"),
    ("l2g-resume-tasks-file", ["resume", "{d}/run"], s_l2g_tasks_file, "is not a folder"),
    ("l2g-resume-task-renamed", ["resume", "{d}/run"], s_l2g_task_renamed, "does not match its records"),
    ("l2g-resume-task-nan", ["resume", "{d}/run"], s_l2g_task_nan, "non-finite weights"),
    ("l2g-resume-task-other-layers", ["resume", "{d}/run"], s_l2g_task_other_layers, "other layers"),
    # option values inside JSON flags: the plain flags' ranges and types
    ("optkw-momentum-1.5", [*T, "--optimizer-kw", '{"momentum": 1.5}', *OUT], None, "momentum must be in [0, 1)"),
    ("optkw-wd-negative", [*T, "--optimizer-kw", '{"weight_decay": -0.1}', *OUT], None, "weight_decay must be in"),
    ("optkw-betas-above-1", [*T, "--optimizer", "adam", "--optimizer-kw", '{"betas": [0.9, 1.5]}', *OUT], None,
     "betas[1] must be in [0, 1)"),
    ("optkw-eps-negative", [*T, "--optimizer", "adam", "--optimizer-kw", '{"eps": -1e-8}', *OUT], None,
     "eps must be in (0, inf)"),
    ("optkw-nesterov-dampening", [*T, "--optimizer-kw", '{"nesterov": true, "dampening": 0.5}', *OUT], None,
     "nesterov needs dampening 0"),
    ("optkw-nesterov-no-momentum", [*T, "--momentum", "0", "--optimizer-kw", '{"nesterov": true}', *OUT], None,
     "nesterov needs momentum > 0"),
    ("optkw-wrong-type", [*T, "--optimizer-kw", '{"momentum": "high"}', *OUT], None, "momentum must be a number"),
    ("optkw-deep", [*T, "--optimizer-kw", '{"a":' * 5000 + "1" + "}" * 5000, *OUT], None, "expected a JSON object"),
    # model specs that would slip past the size limit
    ("model-plus-depth", [*T[:1], "--model", "Basic3ResNet-+3000000-1-1", "--epochs", "1", *OUT], None,
     "plain positive integers"),
    ("model-19-digit-depth", [*T[:1], "--model", "Basic3ResNet-1234567890123456789-1-1", "--epochs", "1", *OUT],
     None, "plain positive integers"),
    # odd acceptances
    ("figures-timeout-negative", ["figures", "--timeout", "-5", "--runs-dir", "{d}/runs"], None,
     "--timeout must be > 0"),
    ("nm-target-equals-start", ["network-morphism", "--depths", "1-1-1", "--target-depths", "1-1-1", *OUT], None,
     "would add nothing"),
    ("adenel-budget-1e400", ["adenel", "--budget-params", "1e400", *OUT], None, "finite count"),
    ("adenel-budget-inf", ["adenel", "--budget-macs", "inf", *OUT], None, "finite count"),
    # environment and paths
    ("out-name-too-long", [*T, "--out", "{d}/" + "x" * 300], None, "too long"),
    ("out-mount-point", [*T, "--out", "/"], None, "mount point"),
    ("out-mount-point-overwrite", [*T, "--out", "/", "--overwrite"], None, "mount point"),
    ("out-empty-cwd", [*T, "--out", "."], None, "current directory"),
    # refusals that would write: no lock file made, no temporary file deleted
    ("resume-refused-makes-no-lock", ["resume", "{d}/run"], s_config_types_no_lock, "epochs must be of type int"),
    ("recover-refused-deletes-nothing", ["recover", "{d}/run"], s_recover_refused, "metrics.jsonl line 1"),
    ("recover-keeps-users-tmp", ["recover", "{d}/run"], s_user_tmp_only, "move your files out"),
    # resume trusts nothing it loads; torch's own warnings stay out of the one line
    ("resume-ckpt-nan", ["resume", "{d}/run"], s_ckpt_nan, "non-finite weights"),
    ("resume-ckpt-extra-key", ["resume", "{d}/run"], s_ckpt_extra_key, "keys growkit does not write: surprise"),
    ("resume-ckpt-rng-float", ["resume", "{d}/run"], s_ckpt_rng_float, "RNG state is not a byte tensor"),
    ("resume-ckpt-plain-pickle", ["resume", "{d}/run"], s_ckpt_plain_pickle, "cannot read checkpoint"),
    ("resume-ckpt-model-list", ["resume", "{d}/run"], s_ckpt_model_list, "holds no table of weights"),
    ("resume-ckpt-optimizer-state-int", ["resume", "{d}/run"], s_ckpt_optimizer_state_int, "optimizer state of"),
    ("resume-ckpt-loop-epoch-text", ["resume", "{d}/run"], s_ckpt_loop_epoch_text, "damaged loop state"),
    ("resume-ckpt-loop-ahead", ["resume", "{d}/run"], s_ckpt_loop_ahead, "metrics.jsonl ends at epoch 1"),
    ("resume-ckpt-optimizer-kind", ["resume", "{d}/run"], s_ckpt_optimizer_kind, "'adam' optimizer state"),
    ("resume-replay-rounds-ints", ["resume", "{d}/run"], s_replay_rounds_ints, "rounds[0] must be an object"),
    ("resume-replay-round-no-grow", ["resume", "{d}/run"], s_replay_round_no_grow, "with 'epoch' and 'grow'"),
    ("resume-replay-round-group", ["resume", "{d}/run"], s_replay_round_group, "'conv9', not a channel group"),
    ("resume-replay-round-huge", ["resume", "{d}/run"], s_replay_round_huge, "GB to train"),
    # resume: the run directory is checked before anything is trained or written
    ("resume-missing", ["resume", "{d}/nothing"], None, "does not exist"),
    ("resume-foreign", ["resume", "{d}/src"], s_foreign, "not a growkit run"),
    ("resume-config-not-json", ["resume", "{d}/run"], s_bad_config_json, "not valid JSON"),
    ("resume-config-types", ["resume", "{d}/run"], s_config_types, "epochs must be of type int"),
    ("resume-config-inf", ["resume", "{d}/run"], s_config_inf, "lr must be finite"),
    ("resume-config-list", ["resume", "{d}/run"], s_config_list, "expected an object"),
    ("resume-config-command", ["resume", "{d}/run"], s_config_command, "unknown run command"),
    ("resume-result-garbage", ["resume", "{d}/run"], s_result_garbage, "result.json is not valid JSON"),
    ("resume-result-types", ["resume", "{d}/run"], s_result_types, "'val_acc' has the wrong type"),
    ("resume-metrics-garbage", ["resume", "{d}/run"], s_metrics_garbage, "metrics.jsonl line 1"),
    ("resume-metrics-no-epoch", ["resume", "{d}/run"], s_metrics_no_epoch, "no 'epoch'"),
    ("resume-metrics-interleaved", ["resume", "{d}/run"], s_metrics_interleaved, "line 2: epoch 1"),
    ("resume-ckpt-foreign", ["resume", "{d}/run"], s_ckpt_foreign, "not a growkit checkpoint"),
    ("resume-ckpt-random", ["resume", "{d}/run"], s_ckpt_random, "cannot read checkpoint"),
    ("resume-ckpt-pickle", ["resume", "{d}/run"], s_ckpt_pickle, "checkpoint"),
    ("resume-ckpt-other-run", ["resume", "{d}/run"], s_ckpt_other_run, "belongs to another run"),
    ("resume-ckpt-other-model", ["resume", "{d}/run"], s_ckpt_other_model, "Plain3Net"),
    ("resume-locked", ["resume", "{d}/run"], s_locked, "in use by pid"),
    ("resume-locked-stale-record", ["resume", "{d}/run"], s_locked_stale_record, "in use by another process"),
    ("resume-a-file", ["resume", "{d}/f"], s_file, "not a"),
    # recover refuses what is not growkit's
    ("recover-foreign", ["recover", "{d}/src"], s_foreign, "not a growkit run"),
    ("recover-missing", ["recover", "{d}/nothing"], None, "does not exist"),
    ("recover-locked", ["recover", "{d}/run"], s_locked, "in use by pid"),
    # figures, models, datasets
    ("figures-runs-dir-under-file", ["figures", "--profile", "smoke", "--only", "quickstart",
                                     "--runs-dir", "{d}/f/runs"], s_file, "which is a file"),
    ("figures-runs-dir-proc", ["figures", "--profile", "smoke", "--runs-dir", "/proc/growkit"], None, "under /proc"),
    ("figures-figures-dir-sys", ["figures", "--profile", "smoke", "--figures-dir", "/sys/growkit",
                                 "--runs-dir", "{d}/runs"], None, "under /sys"),
    ("figures-figures-dir-file", ["figures", "--profile", "smoke", "--figures-dir", "{d}/f",
                                  "--runs-dir", "{d}/runs"], s_file, "not a directory"),
    ("figures-profile", ["figures", "--profile", "gpu9000", "--runs-dir", "{d}/runs"], None, "profile must be"),
    ("figures-jobs-0", ["figures", "--jobs", "0", "--runs-dir", "{d}/runs"], None, "--jobs must be >= 1"),
    ("figures-only-nomatch", ["figures", "--only", "zzz-no-such", "--repo", REPO, "--runs-dir", "{d}/runs"], None,
     "matches no"),
    ("figures-outside-a-checkout", ["figures", "--only", "quickstart", "--runs-dir", "{d}/runs"], None,
     "no growkit checkout"),
    ("figures-repo-not-a-checkout", ["figures", "--repo", "{d}", "--runs-dir", "{d}/runs"], None, "no notebooks/"),
    ("models-extra-arg", ["models", "--fast"], None, "unrecognized arguments"),
    ("datasets-extra-arg", ["datasets", "cifar"], None, "unrecognized arguments"),
    ("no-command", [], None, "required"),
    ("unknown-command", ["grow-forever"], None, "invalid choice"),
]


class _Done:
    def __init__(self, rc, out, err):
        self.returncode, self.stdout, self.stderr = rc, out, err


def _forked(args, cwd: Path, logs: Path, harness: bool = False) -> _Done:
    """`growkit ARGS` through ``growkit.cli.main`` in a process forked from a server with torch and growkit
    already imported (a fresh interpreter per case would cost ~2 CPU-seconds of imports, minutes in all)."""
    import multiprocessing
    import killpoint
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["killpoint", "torch", "growkit.cli", "growkit.runs.lifecycle",
                                "growkit.engine.trainer"])
    out, err, rc = (logs.with_suffix(s) for s in (".out", ".err", ".rc"))
    p = ctx.Process(target=killpoint.forked_cli, args=(args, str(cwd), str(out), str(err), harness, str(rc)))
    p.start()
    p.join(300)
    if p.exitcode is None:
        p.kill()
        p.join()
    # the child's own record of its exit code: the forkserver's relay of it can be lost (exitcode 255)
    code = int(rc.read_text()) if rc.exists() and rc.read_text() else p.exitcode
    return _Done(code, out.read_text(), err.read_text())


def _run_case(case, base: Path, fin: Path) -> dict:
    cid, args, setup, _ = case
    d = base / cid
    d.mkdir()
    holder = setup(d, fin) if setup else None
    try:
        before = tree(d)
        r = _forked([a.replace("{d}", str(d)) for a in args], d, base / f"{cid}.log")
        after = tree(d)
    finally:
        if holder is not None:
            holder.stdin.close()
            holder.wait()
    return {"rc": r.returncode, "out": r.stdout, "err": r.stderr, "before": before, "after": after}


@pytest.fixture(scope="module")
def outcomes(request, finished, tmp_path_factory):
    """Run the selected cases, three at a time."""
    wanted = {item.callspec.params["case"][0] for item in request.session.items
              if getattr(item, "originalname", "") == "test_bad_input_is_refused_and_changes_nothing"}
    base = tmp_path_factory.mktemp("cases")
    todo = [c for c in CASES if c[0] in wanted]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda c: _run_case(c, base, finished), todo))
    return dict(zip([c[0] for c in todo], results))


@pytest.mark.slow
def test_the_forked_cli_behaves_like_a_fresh_interpreter(tmp_path):
    """The forked runner against run_cli on the same inputs: same exit codes and stderr, and a crash
    inside the command would show its traceback."""
    for args in (["train", "--lr", "inf", "--out", tmp_path / "a"], ["models"]):
        a, b = run_cli(*args, cwd=tmp_path), _forked(args, tmp_path, tmp_path / "log")
        assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)
    c = _forked(["resume", tmp_path], tmp_path, tmp_path / "log2")
    d = run_cli("resume", tmp_path, cwd=tmp_path)
    assert (c.returncode, c.stderr) == (d.returncode, d.stderr)


def test_there_are_at_least_60_cases_across_every_subcommand():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    commands = {c[1][0] for c in CASES if c[1]}
    assert {"train", "autogrow", "resume", "recover", "figures", "models", "datasets"} <= commands


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.slow
def test_bad_input_is_refused_and_changes_nothing(outcomes, case):
    if case[2] is s_readonly and os.geteuid() == 0:
        pytest.skip("root may write into a read-only folder")
    o = outcomes[case[0]]
    both = o["out"] + o["err"]
    assert o["rc"] == 2, both
    assert "Traceback" not in both and "<root>" not in both and "weights_only" not in both, both
    lines = o["err"].strip().splitlines()
    assert len(lines) == 1, o["err"]
    assert case[3] in lines[0], lines[0]
    assert o["after"] == o["before"]  # byte-identical: nothing written, moved or deleted


# ----------------------------------------------------------------------------- data loss

# Valid settings that blow up at epoch 1 (checked: a NaN loss on digits, seeded): fail only at run time.
NAN = ["train", "--depths", "1-1-1", "--epochs", "1", "--lr", "10", "--momentum", "0.999", "--weight-decay", "0.9",
       "--batch-size", "16", "--no-progress"]


def _one_line(r):
    both = r.stdout + r.stderr
    assert "Traceback" not in both and len(r.stderr.strip().splitlines()) == 1, both
    return r.stderr.strip()


@pytest.mark.slow
def test_a_folder_with_a_foreign_config_json_survives_overwrite(tmp_path):
    s_foreign(tmp_path, None)
    before = tree(tmp_path)
    for cmd in (["train", *TINY], ["autogrow", "--no-progress", "--finetune", "1"]):
        r = run_cli(*cmd, "--out", tmp_path / "src", "--overwrite")
        assert r.returncode == 2 and "not a growkit run" in _one_line(r)
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_an_old_run_survives_a_failing_overwrite(tmp_path, finished):
    s_run(tmp_path, finished)
    before = tree(tmp_path)
    r = run_cli(*NAN, "--out", tmp_path / "run", "--overwrite")  # NaN loss in epoch 1: exit 1
    line = _one_line(r)
    assert r.returncode == 1 and "loss became nan at epoch 1" in line
    assert "no epoch finished" in line and "last good checkpoint" not in line  # no checkpoint was claimed
    assert tree(tmp_path) == before  # the old run, byte for byte; no staging folder left beside it
    _imagenet(tmp_path)  # a data error found only while training (a JPEG that does not decode): exit 2
    (tmp_path / "data" / "imagenet" / "train" / "n00000000" / "img0.JPEG").write_bytes(b"\xff\xd8\xff\xe0" * 50)
    before = tree(tmp_path)
    r = run_cli("train", *TINY, "--dataset", "imagenet", "--data-root", tmp_path / "data", "--val-fraction", "0.5",
                "--out", tmp_path / "run", "--overwrite")
    assert r.returncode == 2 and "cannot decode" in _one_line(r)
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_overwrite_replaces_only_after_the_first_checkpoint_and_leaves_nothing_beside(tmp_path, finished):
    from growkit.runs import rundir
    s_run(tmp_path, finished)
    old_id = rundir.read_marker(tmp_path / "run")["run_id"]
    r = run_cli("train", *TINY, "--seed", "4", "--out", tmp_path / "run", "--overwrite")
    assert r.returncode == 0, r.stderr
    new = rundir.read_marker(tmp_path / "run")
    assert new["run_id"] != old_id and new["command"] == "train"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["seed"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging or old copy left


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "epoch_s")} for r in rows]


@pytest.mark.slow
def test_a_second_process_on_a_run_is_refused_while_one_runs(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--depths", "1-1-1", "--epochs", "40", "--batch-size", "32", "--no-progress", "--out", out]
    p = subprocess.Popen([sys.executable, "-m", "growkit.cli", *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while not (out / "checkpoint.pt").exists():  # the run is in place after its first checkpoint
            assert p.poll() is None and time.time() - t0 < 300, p.stderr.read() if p.poll() is not None else ""
            time.sleep(0.05)
        for cmd in (["resume", out], ["recover", out], ["train", *TINY, "--out", out, "--overwrite"]):
            before = _rows(out)[:1]
            r = run_cli(*cmd)
            assert r.returncode == 2 and f"in use by pid {p.pid}" in _one_line(r), r.stderr
            assert _rows(out)[:1] == before
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    rows = _rows(out)
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))  # one writer: epochs in order


def _killpoint(*args, cwd):
    """tests/killpoint.py ARGS, forked like the cases above (its kill is an os._exit in that process)."""
    return _forked([str(a) for a in args], cwd, cwd.parent / f"{cwd.name}-{args[0]}.log", harness=True)


@pytest.mark.parametrize("overwrite", [False, True], ids=["fresh", "overwrite"])
@pytest.mark.slow
def test_a_kill_at_every_write_point_is_recoverable(tmp_path, finished, overwrite):
    """Kill the run before each of its writes (renames, fsyncs; an append cut mid-line), then
    `growkit recover` and `growkit resume` (or the command again, when nothing was left): the result
    equals an uninterrupted run; with --overwrite, a kill before the new run's first checkpoint leaves
    the old run byte-identical."""
    args = ["train", "--depths", "1-1-1", "--epochs", "2", "--batch-size", "64", "--no-progress", "--seed", "5"]
    ref = tmp_path / "ref"
    r = run_cli(*args, "--out", ref)
    assert r.returncode == 0, r.stderr
    want, want_res = _comparable(_rows(ref)), json.loads((ref / "result.json").read_text())
    old_tree = tree(finished)
    points = []
    stop = False
    for n in range(1, 60):
        if stop:
            break
        d = tmp_path / f"k{n}"
        d.mkdir()
        out = d / "run"
        extra = []
        if overwrite:
            shutil.copytree(finished, out, symlinks=True)
            extra = ["--overwrite"]
        k = _killpoint(n, *args, "--out", out, *extra, cwd=d)
        if k.returncode == 0:
            break
        assert k.returncode == 137, k.stderr
        points.append(k.stderr.strip().splitlines()[-1].split(": ", 1)[1])
        if not overwrite and points[-1] in (f"before rename {out}", f"before exchange {out}"):
            stop = True  # a fresh run: its points up to the move into place (the rest: the overwrite variant)
        f = _killpoint("finish", out, *args, "--out", out, *extra, cwd=d)
        assert f.returncode == 0, (points[-1], f.stderr)
        assert "Traceback" not in f.stderr
        assert sorted(p.name for p in d.iterdir()) == ["run"], points[-1]  # nothing left beside the run
        if overwrite and tree(out) == old_tree:
            continue  # killed before the new run's first checkpoint: the old run is intact
        assert _comparable(_rows(out)) == want, points[-1]
        res = json.loads((out / "result.json").read_text())
        assert (res["val_acc"], res["test_acc"], res["arch"]) == (want_res["val_acc"], want_res["test_acc"],
                                                                  want_res["arch"]), points[-1]
    else:
        raise AssertionError("the run never finished")
    print(f"{len(points)} write points:", *points, sep="\n  ")
    assert any("config.json" in p for p in points) and any("metrics.jsonl" in p for p in points), points
    assert any("checkpoint.pt" in p for p in points), points
    assert any("result.json" in p for p in points) == overwrite, points


@pytest.mark.slow
def test_recover_repairs_what_a_crash_leaves_and_refuses_what_is_not_growkits(tmp_path, finished):
    from growkit.runs import rundir
    from growkit.runs.recover import recover
    from growkit.errors import GrowkitError

    def copy(name, drop_result=True):
        d = tmp_path / name
        shutil.copytree(finished, d, symlinks=True)
        if drop_result:
            (d / "result.json").unlink()
        return d

    d = copy("no-config")  # config.json lost: rebuilt from the copy inside the checkpoint
    want = json.loads((d / "config.json").read_text())
    (d / "config.json").unlink()
    (d / "config.json.growkit-tmp").write_text('{"comm')  # what a kill during its atomic write leaves
    (d / "notes.tmp").write_text("a user's temporary file\n")  # not growkit's: stays
    msg = recover(d)
    assert "rebuilt config.json" in msg and "removed config.json.growkit-tmp" in msg and "growkit resume" in msg
    assert json.loads((d / "config.json").read_text()) == want and not (d / "config.json.growkit-tmp").exists()
    assert (d / "notes.tmp").read_text() == "a user's temporary file\n"

    d = copy("torn")  # a kill during an append: the cut line goes, every whole row stays
    log = d / "metrics.jsonl"
    whole = log.read_text()
    log.write_text(whole + '{"epoch": 2, "train_lo')
    assert "torn" in recover(d) and log.read_text() == whole
    assert recover(d) == f"{d}: nothing to recover"

    d = copy("garbage")  # damage inside the file is never cut silently
    log = d / "metrics.jsonl"
    log.write_text("#edited by hand\n" + whole)
    before = tree(d)
    with pytest.raises(GrowkitError, match="metrics.jsonl line 1"):
        recover(d)
    assert tree(d) == before

    d = copy("legacy", drop_result=False)  # made before markers existed: adopted after its config checks out
    (d / rundir.MARKER).unlink()
    assert "marked as a growkit run" in recover(d) and rundir.is_run(d)

    d = tmp_path / "empty-run"  # killed right after its marker: growkit's, holds nothing, removed
    d.mkdir()
    (d / rundir.MARKER).write_text(json.dumps(rundir.new_marker("train")))
    assert "removed" in recover(d) and not d.exists()

    s_foreign(tmp_path, None)  # not growkit's: refused, untouched
    before = tree(tmp_path / "src")
    with pytest.raises(GrowkitError, match="not a growkit run"):
        recover(tmp_path / "src")
    assert tree(tmp_path / "src") == before


@pytest.mark.slow
def test_lock_is_exclusive_across_processes_and_names_the_holder(tmp_path):
    from growkit.runs import rundir
    from growkit.errors import GrowkitError
    (tmp_path / "run").mkdir()
    code = ("import sys; from growkit.runs import rundir; lk = rundir.RunLock(sys.argv[1]).acquire(); "
            "lk.record('train x'); print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(GrowkitError, match=f"in use by pid {holder.pid} on .*`growkit train x`"):
            rundir.RunLock(tmp_path / "run").acquire()
    finally:
        holder.stdin.close()
        holder.wait()
    with rundir.RunLock(tmp_path / "run"):  # the holder is gone: the kernel dropped its lock
        pass


# ----------------------------------------------------------------------------- the environment

@pytest.mark.slow
def test_launcher_variables_without_a_master_address_are_refused(tmp_path):
    r = run_cli(*T, "--out", tmp_path / "out", env={"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    assert r.returncode == 2 and "MASTER_ADDR and MASTER_PORT" in _one_line(r)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_stdout_to_a_full_device_is_one_line(tmp_path):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "growkit.cli", "models"], stdout=full, stderr=subprocess.PIPE,
                           text=True, env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "No space left on device" in lines[0], r.stderr
