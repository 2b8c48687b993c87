"""fastpinn's default path against DeepXDE 1.15 (PyTorch backend) on eight problems, side by side in one run.

Issue 20, item 6. Per problem, both sides get the same network (layers, activation, Glorot init), the same
numbers of points, Adam (lr 1e-3), float32 and full batch; one timed iteration is one Adam step:

* DeepXDE: the example's ``dde.data`` / ``dde.nn.FNN`` / ``dde.Model`` set-up, timed as ``Model._train_step``
  after ``train_next_batch`` (``bench_deepxde.py``'s loop: ``Model._train_sgd`` minus callbacks and display).
  DeepXDE evaluates every term on one batch of all points (PDE residual on the BC/IC points too).
* fastpinn, the default path: ``Trainer(problem, scheme)`` with ``derivative_method="auto"``, eager, no
  compile -- ``PINN()`` (fixed weights, like DeepXDE) and ``DN(beta=0.99, tau=10)`` (``fastpinn train``'s
  default scheme); ``Trainer.train`` blocks, so the per-epoch bookkeeping is included.
* fastpinn with each applicable derivative method chosen by hand (PINN, 1 thread): the default must be within
  10 % of the best.

Problems (fastpinn's point sets are drawn by its own samplers; counts match DeepXDE's ``num_*`` arguments):

==================  =========================================  ===========  ===========================
name                what                                        network      points (domain/bnd/init)
==================  =========================================  ===========  ===========================
burgers             the paper's Burgers                          2-20x8-1     10,000 / 200 / 100
poisson             the paper's 2-D Poisson (omega = 4 pi)      2-50x4-1     2,500 / 400
allen_cahn          the paper's Allen-Cahn, periodic in x        2-128x4-1    4,096 / 200 pairs / 512 (*)
helmholtz           DeepXDE's Helmholtz 2-D, sin, a wide net     2-150x3-1    400 / 80
euler_beam          DeepXDE's cantilever, u'''' = -1 (4th order) 1-20x3-1     10 / 2 (16 DeepXDE rows)
beltrami            DeepXDE's Beltrami flow: 3-D + time, a       4-50x4-4     1,000 / 200 / 200
                    system of 4 equations on shared points
heat3d              u_t = 0.1 (u_xx + u_yy + u_zz), 3-D + time   4-32x3-1     2,000 / 300 / 200
poisson1d_tiny      DeepXDE's Poisson 1-D Dirichlet, tiny        1-50x3-1     16 / 2
==================  =========================================  ===========  ===========================

(*) the paper trains mini-batches of 4,096 of 20,000 points; DeepXDE's ``PDE`` data has no mini-batching, so
both sides train 4,096 points full batch (one of the paper's steps).

Rounds are interleaved (shuffled order per round, one untimed warm-up block each); medians over rounds and the
paired ratio (DeepXDE / fastpinn measured in the same round) are printed, at 1 and 2 threads.

    python bench/bench_deepxde_suite.py [--rounds 5] [--seconds 0.5] [--threads 1 2] [--only burgers ...]
    python bench/bench_deepxde_suite.py --write      # also bench/results/deepxde-suite-<cpu>-<date>.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

os.environ.setdefault("DDE_BACKEND", "pytorch")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fastpinn  # noqa: E402
from fastpinn import sampling  # noqa: E402
from fastpinn.derivatives import applicable_methods  # noqa: E402
from fastpinn.problem import Problem, Term, dirichlet, initial, pde  # noqa: E402
from fastpinn.problems import paper  # noqa: E402
from fastpinn.trainer import Trainer  # noqa: E402

from _machine import describe, device_slug  # noqa: E402
from bench_deepxde import import_deepxde  # noqa: E402

F64 = torch.float64


# ------------------------------------------------------------------------------------------ problems
@dataclasses.dataclass
class Case:
    """One problem on both sides: ``fastpinn()`` -> (Problem, network options); ``deepxde(dde)`` -> ``(data,
    layer sizes, activation, input transform or None)``."""

    name: str
    shape: str
    fastpinn: Callable[[], tuple[Problem, dict]]
    deepxde: Callable[[Any], tuple[Any, list[int], str, Optional[Callable]]]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _box_transform(lower, upper):
    """DeepXDE's inputs scaled onto [-1, 1] as fastpinn's network scales them."""
    lo = torch.tensor(lower, dtype=torch.float32)
    hi = torch.tensor(upper, dtype=torch.float32)
    return lambda x: 2.0 * (x - lo.to(x.device)) / (hi - lo).to(x.device) - 1.0


def burgers_case() -> Case:
    nu = 0.01 / math.pi

    def fp():
        return dataclasses.replace(paper.burgers(0), solution=None), {}

    def dd(dde):
        geomtime = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, 1))

        def pde_(x, y):
            return (dde.grad.jacobian(y, x, i=0, j=1) + y * dde.grad.jacobian(y, x, i=0, j=0)
                    - nu * dde.grad.hessian(y, x, i=0, j=0))

        bc = dde.icbc.DirichletBC(geomtime, lambda x: 0, lambda _, on: on)
        ic = dde.icbc.IC(geomtime, lambda x: -np.sin(np.pi * x[:, 0:1]), lambda _, on: on)
        data = dde.data.TimePDE(geomtime, pde_, [bc, ic], num_domain=10_000, num_boundary=200, num_initial=100,
                                train_distribution="pseudo")
        return data, [2] + [20] * 8 + [1], "tanh", _box_transform((-1, 0), (1, 1))

    return Case("burgers", "2-20x8-1, 2nd order, 10,300 points", fp, dd)


def poisson_case() -> Case:
    omega = 4 * math.pi

    def fp():
        return dataclasses.replace(paper.poisson(0), solution=None), {}

    def dd(dde):
        geom = dde.geometry.Rectangle([0, 0], [1, 1])

        def pde_(x, y):
            q = -2 * omega ** 2 * torch.cos(omega * x[:, 0:1]) * torch.sin(omega * x[:, 1:2])
            return dde.grad.hessian(y, x, i=0, j=0) + dde.grad.hessian(y, x, i=1, j=1) - q

        bc = dde.icbc.DirichletBC(geom, lambda x: np.cos(omega * x[:, 0:1]) * np.sin(omega * x[:, 1:2]),
                                  lambda _, on: on)
        data = dde.data.PDE(geom, pde_, [bc], num_domain=2_500, num_boundary=400, train_distribution="pseudo")
        return data, [2] + [50] * 4 + [1], "tanh", _box_transform((0, 0), (1, 1))

    return Case("poisson", "2-50x4-1, 2nd order, 2,900 points", fp, dd)


def allen_cahn_case() -> Case:
    def fp():
        return dataclasses.replace(paper.allen_cahn(0, n_pde=4096), solution=None), {}

    def dd(dde):
        geomtime = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, 1))

        def pde_(x, y):
            return dde.grad.jacobian(y, x, i=0, j=1) - 1e-4 * dde.grad.hessian(y, x, i=0, j=0) + 5 * y ** 3 - 5 * y

        on_side = lambda x, on: on and not np.isclose(x[1], 0)  # noqa: E731 - the x = -1/1 faces
        bcs = [dde.icbc.PeriodicBC(geomtime, 0, on_side, derivative_order=0),
               dde.icbc.PeriodicBC(geomtime, 0, on_side, derivative_order=1),
               dde.icbc.IC(geomtime, lambda x: x[:, 0:1] ** 2 * np.cos(np.pi * x[:, 0:1]), lambda _, on: on)]
        data = dde.data.TimePDE(geomtime, pde_, bcs, num_domain=4096, num_boundary=200, num_initial=512,
                                train_distribution="pseudo")
        return data, [2] + [128] * 4 + [1], "tanh", _box_transform((-1, 0), (1, 1))

    return Case("allen_cahn", "2-128x4-1, 2nd order, periodic, 4,096 + 912 points", fp, dd)


def helmholtz_case() -> Case:
    k0 = 4 * math.pi  # n = 2 wavelengths on [0, 1]
    n_dom, n_bnd = 400, 80

    def f(X):
        return k0 ** 2 * torch.sin(k0 * X[..., 0]) * torch.sin(k0 * X[..., 1])

    def fp():
        g = _gen()
        x = sampling.uniform(n_dom, (0, 0), (1, 1), g, dtype=F64)
        xb = torch.cat([sampling.on_face("uniform", n_bnd // 4, (0, 0), (1, 1), c, v, g, dtype=F64)
                        for c, v in ((0, 0.0), (0, 1.0), (1, 0.0), (1, 1.0))])
        prob = Problem(name="helmholtz", coords=("x", "y"), lower=(0, 0), upper=(1, 1),
                       terms=[pde("pde", x, lambda fl: -fl["u_xx"][..., 0] - fl["u_yy"][..., 0]
                                  - k0 ** 2 * fl["u"][..., 0] - f(fl.x), ("u", "u_xx", "u_yy")),
                              dirichlet("bc", xb, 0.0)], depth=4, width=150)
        return prob, {"activation": "sin"}

    def dd(dde):
        geom = dde.geometry.Rectangle([0, 0], [1, 1])

        def pde_(x, y):
            return (-dde.grad.hessian(y, x, i=0, j=0) - dde.grad.hessian(y, x, i=1, j=1) - k0 ** 2 * y
                    - k0 ** 2 * torch.sin(k0 * x[:, 0:1]) * torch.sin(k0 * x[:, 1:2]))

        bc = dde.icbc.DirichletBC(geom, lambda x: 0, lambda _, on: on)
        data = dde.data.PDE(geom, pde_, [bc], num_domain=n_dom, num_boundary=n_bnd, train_distribution="pseudo")
        return data, [2] + [150] * 3 + [1], "sin", _box_transform((0, 0), (1, 1))

    return Case("helmholtz", "2-150x3-1 sin (wide), 2nd order, 480 points", fp, dd)


def euler_beam_case() -> Case:
    def fp():
        x = torch.cat([torch.rand(10, 1, generator=_gen(), dtype=F64), torch.tensor([[0.0], [1.0]], dtype=F64)])
        left, right = torch.tensor([[0.0]], dtype=F64), torch.tensor([[1.0]], dtype=F64)
        prob = Problem(name="euler_beam", coords=("x",), lower=(0.0,), upper=(1.0,), input_scaling=False,
                       terms=[pde("pde", x, lambda fl: fl["u_xxxx"][..., 0] + 1.0, ("u_xxxx",)),
                              dirichlet("u0", left),
                              pde("du0", left, lambda fl: fl["u_x"][..., 0], ("u_x",)),
                              pde("ddu1", right, lambda fl: fl["u_xx"][..., 0], ("u_xx",)),
                              pde("dddu1", right, lambda fl: fl["u_xxx"][..., 0], ("u_xxx",))],
                       depth=4, width=20)
        return prob, {}

    def dd(dde):
        def ddy(x, y):
            return dde.grad.hessian(y, x)

        def dddy(x, y):
            return dde.grad.jacobian(ddy(x, y), x)

        geom = dde.geometry.Interval(0, 1)
        left = lambda x, on: on and dde.utils.isclose(x[0], 0)  # noqa: E731
        right = lambda x, on: on and dde.utils.isclose(x[0], 1)  # noqa: E731
        bcs = [dde.icbc.DirichletBC(geom, lambda x: 0, left), dde.icbc.NeumannBC(geom, lambda x: 0, left),
               dde.icbc.OperatorBC(geom, lambda x, y, _: ddy(x, y), right),
               dde.icbc.OperatorBC(geom, lambda x, y, _: dddy(x, y), right)]
        data = dde.data.PDE(geom, lambda x, y: dde.grad.hessian(ddy(x, y), x) + 1, bcs, num_domain=10,
                            num_boundary=2)
        return data, [1] + [20] * 3 + [1], "tanh", None

    return Case("euler_beam", "1-20x3-1, 4th order, 12 points", fp, dd)


def beltrami_case() -> Case:
    a, d = 1.0, 1.0
    n_dom, n_bnd, n_ini = 1000, 200, 200
    lower, upper = (-1.0, -1.0, -1.0, 0.0), (1.0, 1.0, 1.0, 1.0)

    def exact(X):
        x, y, z, t = X[..., 0], X[..., 1], X[..., 2], X[..., 3]
        e = torch.exp(-d * d * t)
        u = -a * (torch.exp(a * x) * torch.sin(a * y + d * z) + torch.exp(a * z) * torch.cos(a * x + d * y)) * e
        v = -a * (torch.exp(a * y) * torch.sin(a * z + d * x) + torch.exp(a * x) * torch.cos(a * y + d * z)) * e
        w = -a * (torch.exp(a * z) * torch.sin(a * x + d * y) + torch.exp(a * y) * torch.cos(a * z + d * x)) * e
        return torch.stack([u, v, w], dim=-1)

    def momentum(i: int, grad: str):
        def residual(f):
            U = f["u"]
            conv = U[..., 0] * f["u_x"][..., i] + U[..., 1] * f["u_y"][..., i] + U[..., 2] * f["u_z"][..., i]
            lap = f["u_xx"][..., i] + f["u_yy"][..., i] + f["u_zz"][..., i]
            return f["u_t"][..., i] + conv + f[grad][..., 3] - lap
        return residual

    def velocity(name, pts):
        targets = exact(pts)
        return Term(name, (pts,), lambda f, tg: f["u"][..., :3] - tg, ("u",), None, targets)

    def fp():
        g = _gen()
        x = sampling.uniform(n_dom, lower, upper, g, dtype=F64)
        faces = [(c, v) for c in range(3) for v in (-1.0, 1.0)]
        xb = torch.cat([sampling.on_face("uniform", n_bnd // 6 + (1 if i < n_bnd % 6 else 0), lower, upper, c, v, g,
                                         dtype=F64) for i, (c, v) in enumerate(faces)])
        xi = sampling.on_face("uniform", n_ini, lower, upper, 3, 0.0, g, dtype=F64)
        req = ("u", "u_t", "u_x", "u_y", "u_z", "u_xx", "u_yy", "u_zz")
        terms = [pde("momentum_x", x, momentum(0, "u_x"), req), pde("momentum_y", x, momentum(1, "u_y"), req),
                 pde("momentum_z", x, momentum(2, "u_z"), req),
                 pde("continuity", x, lambda f: f["u_x"][..., 0] + f["u_y"][..., 1] + f["u_z"][..., 2],
                     ("u_x", "u_y", "u_z")),
                 velocity("bc", xb), velocity("ic", xi)]
        return Problem(name="beltrami", coords=("x", "y", "z", "t"), lower=lower, upper=upper, terms=terms,
                       depth=5, width=50, out_dim=4), {}

    def dd(dde):
        def pde_(x, y):
            u, v, w = y[:, 0:1], y[:, 1:2], y[:, 2:3]
            J = [[dde.grad.jacobian(y, x, i=i, j=j) for j in range(4)] for i in range(4)]
            H = [[dde.grad.hessian(y, x, component=i, i=j, j=j) for j in range(3)] for i in range(3)]
            mom = [J[i][3] + u * J[i][0] + v * J[i][1] + w * J[i][2] + J[3][i] - (H[i][0] + H[i][1] + H[i][2])
                   for i in range(3)]
            return mom + [J[0][0] + J[1][1] + J[2][2]]

        def ex(i):  # DeepXDE reads a second parameter as auxiliary variables: one-argument functions only
            return lambda x: exact(torch.as_tensor(x, dtype=torch.float64))[:, i:i + 1].numpy()

        spatial = dde.geometry.Cuboid([-1, -1, -1], [1, 1, 1])
        geomtime = dde.geometry.GeometryXTime(spatial, dde.geometry.TimeDomain(0, 1))
        bcs = [dde.icbc.DirichletBC(geomtime, ex(i), lambda _, on: on, component=i) for i in range(3)]
        ics = [dde.icbc.IC(geomtime, ex(i), lambda _, on: on, component=i) for i in range(3)]
        data = dde.data.TimePDE(geomtime, pde_, bcs + ics, num_domain=n_dom, num_boundary=n_bnd,
                                num_initial=n_ini, train_distribution="pseudo")
        return data, [4] + [50] * 4 + [4], "tanh", _box_transform((-1, -1, -1, 0), (1, 1, 1, 1))

    return Case("beltrami", "4-50x4-4, 4 equations on shared points, 1,400 points", fp, dd)


def heat3d_case() -> Case:
    alpha = 0.1
    n_dom, n_bnd, n_ini = 2000, 300, 200
    lower, upper = (0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)

    def u0(X):
        return torch.sin(math.pi * X[..., 0]) * torch.sin(math.pi * X[..., 1]) * torch.sin(math.pi * X[..., 2])

    def fp():
        g = _gen()
        x = sampling.uniform(n_dom, lower, upper, g, dtype=F64)
        faces = [(c, v) for c in range(3) for v in (0.0, 1.0)]
        xb = torch.cat([sampling.on_face("uniform", n_bnd // 6, lower, upper, c, v, g, dtype=F64) for c, v in faces])
        xi = sampling.on_face("uniform", n_ini, lower, upper, 3, 0.0, g, dtype=F64)
        prob = Problem(name="heat3d", coords=("x", "y", "z", "t"), lower=lower, upper=upper,
                       terms=[pde("pde", x, lambda f: f["u_t"][..., 0]
                                  - alpha * (f["u_xx"][..., 0] + f["u_yy"][..., 0] + f["u_zz"][..., 0]),
                                  ("u_t", "u_xx", "u_yy", "u_zz")),
                              dirichlet("bc", xb, 0.0), initial("ic", xi, u0)], depth=4, width=32)
        return prob, {}

    def dd(dde):
        def pde_(x, y):
            lap = sum(dde.grad.hessian(y, x, i=j, j=j) for j in range(3))
            return dde.grad.jacobian(y, x, i=0, j=3) - alpha * lap

        geomtime = dde.geometry.GeometryXTime(dde.geometry.Cuboid([0, 0, 0], [1, 1, 1]), dde.geometry.TimeDomain(0, 1))
        bc = dde.icbc.DirichletBC(geomtime, lambda x: 0, lambda _, on: on)
        ic = dde.icbc.IC(geomtime, lambda x: u0(torch.as_tensor(x)).numpy()[:, None], lambda _, on: on)
        data = dde.data.TimePDE(geomtime, pde_, [bc, ic], num_domain=n_dom, num_boundary=n_bnd, num_initial=n_ini,
                                train_distribution="pseudo")
        return data, [4] + [32] * 3 + [1], "tanh", _box_transform((0, 0, 0, 0), (1, 1, 1, 1))

    return Case("heat3d", "4-32x3-1, 3-D + time, 2,500 points", fp, dd)


def poisson1d_tiny_case() -> Case:
    def fp():
        x = torch.rand(16, 1, generator=_gen(), dtype=F64) * 2 - 1
        ends = torch.tensor([[-1.0], [1.0]], dtype=F64)
        prob = Problem(name="poisson1d_tiny", coords=("x",), lower=(-1.0,), upper=(1.0,),
                       terms=[pde("pde", x, lambda f: f["u_xx"][..., 0] + math.pi ** 2 * torch.sin(math.pi * f.x[..., 0]),
                                  ("u_xx",)),
                              dirichlet("bc", ends, 0.0)], depth=4, width=50)
        return prob, {}

    def dd(dde):
        geom = dde.geometry.Interval(-1, 1)
        data = dde.data.PDE(geom, lambda x, y: dde.grad.hessian(y, x) + np.pi ** 2 * torch.sin(np.pi * x),
                            [dde.icbc.DirichletBC(geom, lambda x: 0, lambda _, on: on)], num_domain=16,
                            num_boundary=2)
        return data, [1] + [50] * 3 + [1], "tanh", None

    return Case("poisson1d_tiny", "1-50x3-1, 18 points", fp, dd)


CASES: dict[str, Callable[[], Case]] = {
    "burgers": burgers_case, "poisson": poisson_case, "allen_cahn": allen_cahn_case, "helmholtz": helmholtz_case,
    "euler_beam": euler_beam_case, "beltrami": beltrami_case, "heat3d": heat3d_case,
    "poisson1d_tiny": poisson1d_tiny_case,
}
PAPER = ("burgers",)  # the >= 3x target; >= 2x elsewhere
SHARED = ("beltrami",)  # also timed with every term evaluated on its own (before issue 20 item 2)


# ------------------------------------------------------------------------------------------- runners
class DeepXDE:
    def __init__(self, dde, case: Case) -> None:
        dde.config.set_random_seed(0)
        dde.config.set_default_float("float32")
        data, layers, activation, transform = case.deepxde(dde)
        net = dde.nn.FNN(layers, activation, "Glorot normal")
        if transform is not None:
            net.apply_feature_transform(transform)
        self.data = data
        self.model = dde.Model(data, net)
        self.model.compile("adam", lr=1e-3)
        self.model.train(iterations=1, display_every=1, verbose=0)
        self.rows = int(self.model.train_state.X_train.shape[0])

    def block(self, n: int) -> float:
        model, state = self.model, self.model.train_state
        tick = time.perf_counter()
        for _ in range(n):
            state.set_data_train(*self.data.train_next_batch(model.batch_size))
            model._train_step(state.X_train, state.y_train, state.train_aux_vars)
        return (time.perf_counter() - tick) / n


class Fast:
    """``share=False``: every term evaluates the network on its own (the path before shared evaluations)."""

    def __init__(self, case: Case, scheme, method: str = "auto", share: bool = True) -> None:
        problem, options = case.fastpinn()
        net = problem.network(**options) if options else None
        self.trainer = Trainer(problem, scheme, network=net, derivative_method=method, eval_every=10**9,
                               threads=None, watch=False)  # threads: set by the suite, alike for both sides
        if not share:
            self.trainer.loss_functions.groups = [([k], None) for k in range(len(problem.terms))]
            self.trainer.backward.shared_graph = False
        self.methods = sorted(set(self.trainer.derivative_methods.values()))

    def block(self, n: int) -> float:
        return self.trainer.train(n).train_seconds / n


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def interleave(runners: dict[str, Any], rounds: int, seconds: float, seed: int = 0) -> dict[str, list[float]]:
    """Seconds per iteration of each runner per round; a block is sized from the warm-up to ~``seconds``."""
    blocks = {}
    for k, r in runners.items():
        r.block(2)
        per = r.block(3)
        blocks[k] = max(3, min(200, int(seconds / max(per, 1e-6))))
    rng = random.Random(seed)
    out: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        order = list(runners)
        rng.shuffle(order)
        for k in order:
            out[k].append(runners[k].block(blocks[k]))
    return out


def hand_methods(case: Case) -> list[str]:
    problem, options = case.fastpinn()
    net = problem.network(**options)
    ok = set(["jet", "fused", "taylor", "autograd"])
    for t in problem.terms:
        why = applicable_methods(net, t.requests, problem.coords)
        ok &= {m for m, reason in why.items() if reason is None}
    return [m for m in ("jet", "fused", "taylor", "autograd") if m in ok]


def run_case(dde, name: str, threads: list[int], rounds: int, seconds: float, log) -> dict:
    case = CASES[name]()
    res: dict[str, Any] = {"name": name, "shape": case.shape, "threads": {}}
    for n in threads:
        torch.set_num_threads(n)
        runners = {"DeepXDE": DeepXDE(dde, case), "PINN": Fast(case, fastpinn.PINN()),
                   "DN": Fast(case, fastpinn.DN(beta=0.99, tau=10))}
        if n == threads[0]:
            for m in hand_methods(case):
                runners[f"PINN {m}"] = Fast(case, fastpinn.PINN(), method=m)
            if name in SHARED:
                runners["per-term PINN"] = Fast(case, fastpinn.PINN(), share=False)
                runners["per-term DN"] = Fast(case, fastpinn.DN(beta=0.99, tau=10), share=False)
        samples = interleave(runners, rounds, seconds)
        med = {k: 1e3 * median(v) for k, v in samples.items()}
        ratio = {k: median([a / b for a, b in zip(samples["DeepXDE"], samples[k])]) for k in ("PINN", "DN")}
        row = {"median_ms": med, "deepxde_over": ratio, "rows": runners["DeepXDE"].rows,
               "auto_methods": runners["PINN"].methods}
        hand = {k: v for k, v in med.items() if k.startswith("PINN ")}
        if hand:
            best = min(hand, key=hand.get)
            row["best_hand"] = best
            row["default_over_best"] = median([a / b for a, b in zip(samples["PINN"], samples[best])])
        res["threads"][n] = row
        log(f"{name} @{n} thread(s): " + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
            + f" ms; DeepXDE/PINN {ratio['PINN']:.2f}x, DeepXDE/DN {ratio['DN']:.2f}x"
            + (f"; default/best-by-hand ({row['best_hand']}) {row['default_over_best']:.2f}" if hand else ""))
    return res


def report(results: list[dict], info: dict, args, started) -> str:
    lines = [f"# fastpinn's default path against DeepXDE {args.dde_version}: eight problems ({started:%Y-%m-%d})", "",
             f"Machine: {info['device_name']}; load average at start {info['load_average']} (a shared machine: other "
             f"jobs ran throughout); torch {info['torch']}; float32; Adam lr 1e-3; full batch. "
             f"`python bench/bench_deepxde_suite.py --rounds {args.rounds} --seconds {args.seconds} --write`: "
             "interleaved rounds (shuffled order), median ms per iteration; ratios are medians of per-round "
             "DeepXDE / fastpinn (> 1: fastpinn faster). fastpinn = `Trainer(problem, scheme)`, "
             "derivative_method='auto', eager, no compile.", ""]
    for n in args.threads:
        lines += [f"## {n} thread(s)", "",
                  "| problem | shape | DeepXDE ms (rows) | fastpinn PINN ms | DN ms | DeepXDE / PINN | DeepXDE / DN | target | auto picks |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in results:
            row = r["threads"][n]
            m, q = row["median_ms"], row["deepxde_over"]
            target = 3.0 if r["name"] in PAPER else 2.0
            met = "met" if q["PINN"] >= target else "**missed**"
            lines.append(f"| {r['name']} | {r['shape']} | {m['DeepXDE']:.2f} ({row['rows']}) | {m['PINN']:.2f} | "
                         f"{m['DN']:.2f} | {q['PINN']:.2f} | {q['DN']:.2f} | {target:.0f}x {met} | "
                         f"{', '.join(row['auto_methods'])} |")
        lines.append("")
    n = args.threads[0]
    lines += [f"## Terms on shared points: one evaluation against one per term ({n} thread(s))", "",
              "| problem | PINN ms shared / per-term | DN ms shared / per-term | DN / PINN shared | DN / PINN per-term |",
              "|---|---|---|---|---|"]
    for r in results:
        m = r["threads"][n]["median_ms"]
        if "per-term PINN" in m:
            lines.append(f"| {r['name']} | {m['PINN']:.2f} / {m['per-term PINN']:.2f} | {m['DN']:.2f} / "
                         f"{m['per-term DN']:.2f} | {m['DN'] / m['PINN']:.3f} | {m['per-term DN'] / m['per-term PINN']:.3f} |")
    lines.append("")
    lines += [f"## The default against the best method chosen by hand (PINN, {n} thread(s))", "",
              "| problem | ms per method | best | default / best | within 10 % |", "|---|---|---|---|---|"]
    for r in results:
        row = r["threads"][n]
        if "best_hand" not in row:
            continue
        ms = ", ".join(f"{k[5:]} {v:.2f}" for k, v in row["median_ms"].items() if k.startswith("PINN "))
        ok = "yes" if row["default_over_best"] <= 1.10 else "**no**"
        lines.append(f"| {r['name']} | {ms} | {row['best_hand'][5:]} | {row['default_over_best']:.2f} | {ok} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="fastpinn's default path vs DeepXDE on eight problems")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5, help="target seconds per timed block")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--write", action="store_true", help="write bench/results/deepxde-suite-<cpu>-<date>.md")
    args = ap.parse_args(argv)
    dde = import_deepxde()
    if dde is None:
        return 0
    args.dde_version = dde.__version__
    info = describe("cpu")
    started = _dt.datetime.now(_dt.timezone.utc)

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    results = [run_case(dde, name, args.threads, args.rounds, args.seconds, log) for name in args.only]
    text = report(results, info, args, started)
    print(text)
    if args.write:
        from fastpinn._io import atomic_write_text

        out = HERE / "results" / f"deepxde-suite-{device_slug(info)}-{started:%Y-%m-%d}.md"
        atomic_write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
