"""Learn to Grow against its baselines on two task streams of digits, several seeds: the numbers of the docs.

    OMP_NUM_THREADS=1 python bench/learn_to_grow_streams.py [--seeds 0 1 2] [--device cpu] [--out FILE]

Streams: split digits (5 tasks of 2 classes, the conv backbone: Plain3Net 1-1-1 convs + a hidden linear layer
of 64) and permuted digits (5 tasks of all 10 classes, a fixed pixel permutation each, an MLP 64-100-100).
Arms: Learn to Grow, EWC, joint multi-task training, fine-tuning, separate nets, the frozen trunk; every arm
the same epochs per task (``--search-epochs + --train-epochs``) and the same seeds. Prints JSON: per arm and
seed the accuracy matrix, average accuracy, BWT, forgetting and parameters; per stream the summary table and
the paired verdicts of :mod:`growkit.methods.learn_to_grow.study` (through :mod:`growkit.papers.stats`).

EWC's lambda is tuned per stream first, on the first seed, by the average accuracy on the tasks' *validation*
splits (``--ewc-lambdas``; a lambda whose loss diverges is recorded as null); the test splits decide nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ["l2g", "ewc", "joint", "finetune", "separate", "frozen"]
STREAMS = {"split digits": dict(stream="split", model="Plain3Net", hidden=[64]),
           "permuted digits": dict(stream="permuted", model="MLP", hidden=[100, 100])}


def on_validation(stream):
    """The stream with every task's test split replaced by its validation split (for tuning)."""
    import copy
    import dataclasses
    tasks = []
    for t in stream.tasks:
        c = copy.copy(t)
        c.splits = {**t.splits, "test": t.splits["val"]}
        tasks.append(c)
    return dataclasses.replace(stream, tasks=tuple(tasks))


def main(argv=None) -> dict:
    import torch

    from growkit.methods.learn_to_grow import continual, study
    from growkit.methods.learn_to_grow.loop import L2GConfig, run_stream
    from growkit.errors import NonFiniteLoss
    from growkit.papers import stats

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("--search-epochs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--train-epochs", type=int, default=20)
    p.add_argument("--ewc-lambdas", type=float, nargs="+", default=[1e1, 1e2, 1e3, 1e4])
    p.add_argument("--out", help="also write the JSON here")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from growkit.engine.records import environment
    report = {"settings": {**vars(a), "arms": ARMS, "streams": STREAMS},
              "environment": environment(torch.device(a.device)), "streams": {}}
    t_all = time.perf_counter()
    for name, kw in STREAMS.items():
        results, runs, tuning = {}, {}, {}
        common = dict(device=a.device, tasks=a.tasks, search_epochs=a.search_epochs, warmup=a.warmup,
                      train_epochs=a.train_epochs, **kw)
        val = on_validation(continual.task_stream("digits", a.tasks, kind=kw["stream"], seed=a.seeds[0],
                                                  device=a.device))
        for lam in a.ewc_lambdas:
            try:
                r = run_stream(L2GConfig(seed=a.seeds[0], method="ewc", ewc_lambda=lam, **common), val)
            except NonFiniteLoss as e:  # too stiff a penalty for the learning rate: the loss diverges
                tuning[str(lam)] = None
                print(f"{name}, ewc lambda {lam:g}: diverged ({e})", file=sys.stderr)
                continue
            tuning[str(lam)] = r["avg_acc"]
            print(f"{name}, ewc lambda {lam:g}: {r['avg_acc']:.2f} % average validation accuracy", file=sys.stderr)
        best = max((lam for lam in a.ewc_lambdas if tuning[str(lam)] is not None), key=lambda lam: tuning[str(lam)])
        for seed in a.seeds:
            stream = continual.task_stream("digits", a.tasks, kind=kw["stream"], seed=seed, device=a.device)
            for arm in ARMS:
                cfg = L2GConfig(seed=seed, **common, **study.SETTINGS[arm], **({"ewc_lambda": best} if arm == "ewc"
                                                                                 else {}))
                t0 = time.perf_counter()
                r = run_stream(cfg, stream)
                results[arm, seed] = r
                runs[f"{arm} seed {seed}"] = {
                    "accuracy_matrix": r["accuracy_matrix"], "avg_acc": r["avg_acc"], "bwt": r["bwt"],
                    "forgetting": r["forgetting"], "total_params": r["total_params"],
                    "params_per_task": r["params_per_task"], "choices": r["choices"],
                    "wall_s": round(time.perf_counter() - t0, 1)}
                print(f"{name}, {arm}, seed {seed}: {r['avg_acc']:.2f} % avg, BWT {r['bwt']:+.2f}, "
                      f"{r['total_params']:,} params ({runs[f'{arm} seed {seed}']['wall_s']} s)", file=sys.stderr)
        report["streams"][name] = {
            "ewc_lambda": best, "ewc_tuning_val_avg_acc": tuning, "runs": runs,
            "table": study.table(results, ARMS, a.seeds),
            "verdicts": [study.line(v) for v in study.verdicts(results, ARMS, a.seeds)],
            "method_note": stats.method_note(a.seeds)}
    report["wall_s"] = round(time.perf_counter() - t_all, 1)
    text = json.dumps(report, indent=1)
    if a.out:
        Path(a.out).write_text(text)
    print(text)
    return report


if __name__ == "__main__":
    main()
