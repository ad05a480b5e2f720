"""Workers of tests/distributed/test_distributed.py: started by ``torchrun`` for N processes, or called in the test's
own process (no launcher: the one-process answer, through the code path one process always takes).

    torchrun --nproc_per_node=N tests/ddp_worker.py step OUT N_IMAGES BATCH [NET]
    torchrun --nproc_per_node=N tests/ddp_worker.py run OUT SPEC.json
    torchrun --nproc_per_node=N tests/ddp_worker.py cli HASHES growkit-arguments...
"""
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from growkit.dist import data_parallel as ddp, group as distributed  # noqa: E402
from growkit.runs import lifecycle as runs, registry  # noqa: E402
from growkit.engine.config import TrainConfig  # noqa: E402
from growkit.models import create  # noqa: E402
from growkit.engine.passes import Passes  # noqa: E402


class Info:
    num_classes = 10


class Images:
    """A float64 data set in fixed order (no augmentation): what a one-step comparison needs."""

    info = Info()

    def __init__(self, n: int):
        g = torch.Generator().manual_seed(7)
        self.x = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)
        self.y = torch.randint(0, 10, (n,), generator=g)

    def size(self, split):
        return len(self.y)

    def train_batches(self, batch_size, seed):
        for s in range(0, len(self.y), batch_size):
            yield self.x[s:s + batch_size], self.y[s:s + batch_size]

    def eval_batches(self, split, batch_size=3):
        yield from self.train_batches(batch_size, 0)


NETS = {"Basic3ResNet": dict(depths=[1, 1, 1], widths=[4, 4, 4]), "VGG19": dict(widths=4),
        "LeNet5": dict(widths=[4, 4, 12, 8])}


def step(n: int, batch: int, net: str = "Basic3ResNet") -> dict:
    """Train a float64 net for one epoch of ``n`` images (global batches of ``batch``: the last one uneven),
    then evaluate; the gradients of every step, the parameters, buffers and the reduced sums."""
    torch.manual_seed(0)
    model = create(net, **NETS[net], in_channels=1, num_classes=10, image_size=8).double()
    group = distributed.setup()
    net = ddp.wrap(model) if group is not None else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    passes = Passes(Images(n), torch.device("cpu"), False, batch)
    grads = []
    loss, hits, count = passes.train_epoch(net, opt, None, 0, on_batch=lambda s, l: grads.append(
        {k: p.grad.clone() for k, p in model.named_parameters()}))
    val = passes.evaluate(model, "val")
    return {"grads": grads, "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "momentum": {k: opt.state[p]["momentum_buffer"].clone() for k, p in model.named_parameters()},
            "loss_sum": float(loss), "hits": int(hits), "count": count, "val": val}


class Hashes:
    """After every growth and every epoch: this rank's hash of model, optimizer and grower state."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def _log(self, trainer, what):
        h = distributed.state_hash(trainer.model, trainer.opt,
                                   trainer.grower.state_dict() if trainer.grower is not None else None)
        with open(self.path, "a") as f:
            f.write(json.dumps({"epoch": trainer.loop.epoch, "what": what, "hash": h}) + "\n")

    def on_growth(self, trainer, event):
        self._log(trainer, "growth")

    def on_epoch(self, trainer, row):
        self._log(trainer, "epoch")


class DieAt:
    """Rank ``rank`` dies (as SIGKILL would) when epoch ``epoch`` starts."""

    def __init__(self, rank: int, epoch: int):
        self.rank, self.epoch = rank, epoch

    def on_epoch_start(self, trainer):
        if distributed.rank() == self.rank and trainer.loop.epoch == self.epoch:
            os._exit(137)


def run(out: Path, spec: dict) -> dict:
    """``spec``: {"method", "train": TrainConfig fields, "options": the method's fields, "hashes": folder,
    "die": [rank, epoch] or absent, "resume": true to resume ``out``}."""
    callbacks = []
    if spec.get("hashes"):
        callbacks.append(Hashes(Path(spec["hashes"]) / f"rank{distributed.rank()}.jsonl"))
    if spec.get("die"):
        callbacks.append(DieAt(*spec["die"]))
    if spec.get("resume"):
        return runs.resume(out, callbacks=callbacks)
    m = registry.get(spec["method"])
    options = m.config.from_dict(spec["options"]) if m.config is not None else None
    return runs.run(spec["method"], TrainConfig(**spec["train"]), options, out, callbacks=callbacks)


def cli_logging_hashes(hashes: Path, args: list[str]) -> int:
    """``growkit ARGS`` on this rank; every time the ranks compare their states (learn-to-grow: after
    every task) this rank's own hash of the model's parameters and buffers is logged to ``hashes``."""
    from growkit import cli
    check = distributed.check_identical

    def logged(model, opt=None, extra=None, when=""):
        hashes.mkdir(parents=True, exist_ok=True)
        with open(hashes / f"rank{distributed.rank()}.jsonl", "a") as f:
            f.write(json.dumps({"when": when, "hash": distributed.state_hash(model)}) + "\n")
        return check(model, opt, extra, when)

    distributed.check_identical = logged  # the loop looks it up on the module at every call
    return cli.main(args)


def main(argv):
    kind, out = argv[0], Path(argv[1])
    distributed.setup()
    if kind == "cli":
        sys.exit(cli_logging_hashes(out, argv[2:]))
    if kind == "step":
        res = step(int(argv[2]), int(argv[3]), *argv[4:])
        torch.save(res, out / f"rank{distributed.rank()}.pt")
    else:
        run(out, json.loads(Path(argv[2]).read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
