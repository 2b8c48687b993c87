"""Data-parallel training over collocation points with torch.distributed (one model, N ranks).

    python examples/train_distributed.py --epochs 200                       # one process (the 1-rank case)
    torchrun --nproc-per-node 2 examples/train_distributed.py --epochs 200  # 2 ranks on this machine

Each rank keeps a contiguous shard of every term's points, the weighted backward sums the shards'
gradients (weighted by their sizes) so every rank holds the gradient of the whole problem, and the
weights are computed from it: the result equals the one-process run to rounding. Rank 0 writes
``OUT/history.npz`` and ``OUT/checkpoint.pt`` (atomically; the others wait on a barrier). Rerunning the
same command continues from the checkpoint -- with any number of ranks.
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

import torch
import torch.distributed as dist

import fastpinn
from fastpinn import Trainer
from fastpinn.problems import allen_cahn, burgers, poisson1d


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", choices=("burgers", "allen_cahn", "poisson1d"), default="burgers")
    ap.add_argument("--n-pde", type=int, default=2000, help="PDE collocation points (split over the ranks)")
    ap.add_argument("--epochs", type=int, default=1000, help="epochs in total (a resume trains the rest)")
    ap.add_argument("--scheme", choices=("dn", "ma", "id", "pinn"), default="dn")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--out", default="runs/distributed", help="directory rank 0 writes to")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds a rank waits in a collective before the job fails (e.g. a dead peer)")
    args = ap.parse_args(argv)

    if "WORLD_SIZE" in os.environ:  # launched by torchrun: rendezvous from its environment variables
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.timeout))
    device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu"
    make = {"burgers": burgers, "allen_cahn": allen_cahn, "poisson1d": poisson1d}[args.problem]
    kwargs = {"n_pde": args.n_pde}
    if args.problem != "poisson1d":
        kwargs.update(depth=4, width=32)
    problem = make(0, **kwargs)  # every rank builds the same points from the seed, then keeps its shard
    scheme = fastpinn.PINN() if args.scheme == "pinn" else getattr(fastpinn, args.scheme.upper())()
    trainer = Trainer(problem, scheme, device=device, dtype=getattr(torch, args.dtype), eval_every=100)

    out = Path(args.out)
    ckpt = out / "checkpoint.pt"
    if trainer.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if ckpt.exists():
        trainer.load_checkpoint(str(ckpt), max_epoch=args.epochs)
    error = float("nan")
    if trainer.epoch < args.epochs:
        history = trainer.train(args.epochs - trainer.epoch)
        if trainer.rank == 0:
            if (out / "history.npz").exists():  # a resumed run: its earlier epochs first
                history = fastpinn.History.load(str(out / "history.npz")).concat(history)
            history.save(str(out / "history.npz"))
        trainer.save_checkpoint(str(ckpt))  # rank 0 writes, every rank waits for it
        error = float(history.final_rel_l2().mean())
    if trainer.rank == 0:
        print(f"{args.problem}/{args.scheme}: {trainer.world_size} rank(s), epoch {trainer.epoch}, "
              f"rel. L2 {error:.3e}, shard of the PDE points on rank 0: "
              f"{trainer.shard_sizes[0]} of {args.n_pde}", flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()
    return error


if __name__ == "__main__":
    main()
