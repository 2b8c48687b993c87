"""A user's problem file (1-D Poisson, u = sin πx), as the tests of ``FILE.py:FUNCTION`` problems write it, and
the command-line options that keep their runs short."""

import textwrap

FAST = ["--epochs", "6", "--eval-every", "3", "--no-figures", "--no-progress", "--compile", "off", "--threads", "1",
        "--backend", "torch"]

PROBLEM_FILE = textwrap.dedent('''
    import math, torch
    from fastpinn import Problem, pde, dirichlet, sampling

    def make_problem(seed=0, n_pde=40, epochs=500):
        gen = torch.Generator().manual_seed(seed)
        x = sampling.uniform(n_pde, [0.0], [1.0], gen)
        def residual(f):
            return f["u_xx"][..., 0] + math.pi ** 2 * torch.sin(math.pi * f.x[..., 0])
        def solution():
            X = torch.linspace(0, 1, 33, dtype=torch.float64).reshape(-1, 1)
            return X.numpy(), torch.sin(math.pi * X[:, 0]).numpy()
        return Problem(name="mine", coords=("x",), lower=(0.0,), upper=(1.0,),
                       terms=[pde("pde", x, residual, "u_xx"),
                              dirichlet("bc", torch.tensor([[0.0], [1.0]], dtype=torch.float64), 0.0)],
                       depth=2, width=8, epochs=epochs, solution=solution, seeds=(seed,))

    def no_seed(n_pde=40):
        return make_problem(0, n_pde)

    def not_a_problem(seed=0):
        return 42
''')
