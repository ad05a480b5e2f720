"""The process group of a run launched by ``torchrun``, and the few collectives growkit needs.

``torchrun`` starts one process per device and tells each its place through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, plus the rendezvous address). :func:`setup` reads it and
joins the group once, with a backend per device type chosen automatically: NCCL for tensors on a GPU
(each process on ``cuda:LOCAL_RANK``), gloo for tensors on the CPU (the only one without CUDA). A run
on the CPU of a GPU machine thus still works, and a rank need not know the run's device to join.
Without those variables (a plain ``python -m growkit``) nothing happens: no group, :func:`group` is
None, and every helper here is a no-op that returns at once, so one process runs exactly the code it
ran before distributed training existed.

:func:`solo` marks a stretch where rank 0 works alone on its raw model with the whole global batch
(a grower's decision and initializer): inside it, :func:`collective` is False, so neither the
batch sharding nor the shared BatchNorm statistics issue a collective the other ranks would wait for.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import gc
import hashlib
import io
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import GrowkitError

# How long a rank waits for the others in a collective. Rank 0 runs growers' initializers alone
# (AdamInit's epochs, Gauss-Newton's morphism epochs) while the others wait, so the default is generous.
TIMEOUT_S = float(os.environ.get("GROWKIT_DIST_TIMEOUT_S", 6 * 3600))


@dataclass(frozen=True)
class Group:
    rank: int
    world: int
    local_rank: int
    backend: str
    cuda: torch.device | None  # this rank's GPU (cuda:LOCAL_RANK) when CUDA is available

    def device(self, wanted: torch.device) -> torch.device:
        """This rank's device for a run that asked for ``wanted`` (its GPU, or the CPU)."""
        return self.cuda if wanted.type == "cuda" and self.cuda is not None else torch.device("cpu")


_GROUP: Group | None = None
_SOLO = 0  # depth of solo() blocks


def launched() -> bool:
    """True when ``torchrun`` (or any launcher setting RANK and WORLD_SIZE) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def world_size() -> int:
    """The number of processes the launcher asked for (1 without a launcher); reads the environment only."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1
    except ValueError:
        raise GrowkitError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} is not a number") from None


def setup() -> Group | None:
    """Join the launcher's process group (once per process); None without a launcher."""
    global _GROUP
    if _GROUP is not None or not launched():
        return _GROUP
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise GrowkitError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
    if not (0 <= rank < world and 0 <= local):
        raise GrowkitError(f"RANK {rank} must be in 0..WORLD_SIZE-1 ({world - 1}) and LOCAL_RANK >= 0")
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing and not dist.is_initialized():  # torchrun sets them; a hand-set RANK/WORLD_SIZE may not
        raise GrowkitError(f"RANK and WORLD_SIZE are set but {' and '.join(missing)} not; start the run with "
                           "torchrun, or unset RANK and WORLD_SIZE for a single process")
    cuda = None
    if torch.cuda.is_available():
        if local >= torch.cuda.device_count():
            raise GrowkitError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices are visible")
        torch.cuda.set_device(local)
        cuda = torch.device("cuda", local)
    backend = "cpu:gloo,cuda:nccl" if cuda is not None else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=TIMEOUT_S))
    _GROUP = Group(rank, world, local, backend, cuda)
    # leave the group before the interpreter tears down: a process group still alive at exit can abort
    # the process ("terminate called without an active exception") after the run has succeeded
    atexit.register(reset)
    return _GROUP


def group() -> Group | None:
    """The joined group, or None in a single process."""
    return _GROUP


def reset() -> None:
    """Leave the process group (tests; a process that ends leaves it anyway)."""
    global _GROUP
    if dist.is_initialized():
        # DDP wrappers dropped but kept by reference cycles still hold the group; collected first, the group
        # is really freed here (its gloo threads joined), not later during interpreter shutdown
        gc.collect()
        dist.destroy_process_group()
    _GROUP = None


def rank() -> int:
    return 0 if _GROUP is None else _GROUP.rank


def is_main() -> bool:
    """True on rank 0 and in a single process: the one that writes files and decides growth."""
    return _GROUP is None or _GROUP.rank == 0


def collective() -> bool:
    """True when the training passes must shard batches and share BatchNorm statistics."""
    return _GROUP is not None and _SOLO == 0


@contextlib.contextmanager
def solo():
    """Rank 0 working alone on its raw model (no sharding, no collectives); elsewhere a no-op marker."""
    global _SOLO
    _SOLO += 1
    try:
        yield
    finally:
        _SOLO -= 1


def barrier() -> None:
    if _GROUP is not None:
        dist.barrier()


def broadcast_object(obj=None, src: int = 0, device: torch.device | str = "cpu"):
    """``obj`` from rank ``src`` on every rank (``obj`` is ignored elsewhere). Any picklable object;
    on the other ranks its tensors (anywhere inside it, dataclasses included) arrive on ``device``. Cost:
    one pickle of ``obj`` and two broadcasts over gloo; meant for plans, grower state, a checkpoint."""
    if _GROUP is None:
        return obj
    payload = [None]
    if _GROUP.rank == src:
        buf = io.BytesIO()
        torch.save(obj, buf)
        payload = [buf.getvalue()]
    dist.broadcast_object_list(payload, src=src, device=torch.device("cpu"))
    if _GROUP.rank == src:
        return obj
    return torch.load(io.BytesIO(payload[0]), map_location=torch.device(device), weights_only=False)


def broadcast_tensors(tensors, src: int = 0) -> None:
    """Overwrite every tensor in place with rank ``src``'s values (same shapes and dtypes on all ranks)."""
    if _GROUP is None:
        return
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=src)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of ``t`` (a new tensor; ``t`` itself untouched). Not differentiable."""
    if _GROUP is None:
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_object(obj) -> list:
    if _GROUP is None:
        return [obj]
    out = [None] * _GROUP.world
    dist.all_gather_object(out, obj)
    return out


def _feed(h, value) -> None:
    if torch.is_tensor(value):
        v = value.detach().cpu().contiguous()
        h.update(f"{v.dtype}{tuple(v.shape)}".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            h.update(str(k).encode())
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)):
        for v in value:
            _feed(h, v)
    else:
        h.update(repr(value).encode())


def state_hash(model: torch.nn.Module, opt=None, extra=None) -> str:
    """SHA-256 of the model's parameters and buffers (by name, bit for bit), the optimizer state by
    parameter name and ``extra`` (e.g. a grower's state): equal hashes mean identical states.
    Cost: one copy of everything to the host."""
    h = hashlib.sha256()
    _feed(h, dict(model.named_parameters()))
    _feed(h, dict(model.named_buffers()))
    if opt is not None:  # its state by parameter name (this layer sits below the engine's optimizers)
        _feed(h, {n: dict(opt.state[p]) for n, p in model.named_parameters() if p in opt.state and opt.state[p]})
    if extra is not None:
        _feed(h, extra)
    return h.hexdigest()


def check_identical(model: torch.nn.Module, opt=None, extra=None, when: str = "") -> str:
    """Raise GrowkitError unless every rank holds the same model, optimizer state and ``extra``."""
    mine = state_hash(model, opt, extra)
    hashes = all_gather_object(mine)
    if len(set(hashes)) > 1:
        bad = [r for r, x in enumerate(hashes) if x != hashes[0]]
        raise GrowkitError(f"ranks {bad} differ from rank 0 {when}: model, optimizer or grower state "
                           "diverged across processes")
    return mine
