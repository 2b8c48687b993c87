"""NumPy transcriptions of the gradient-conflict methods, straight from the papers: loops, float64, no cleverness.

Each function takes the Jacobian ``G`` [K, P] (rows = per-term gradients) and returns the update direction [P]
(descent: ``theta -= lr * d``). They work in the parameter space where the papers do (projections of vectors,
pseudo-inverses of G, SVDs of G), not on the Gram matrix as :mod:`fastpinn.aggregation.solvers` does, so an
agreement is evidence about the reformulation too. Iterative ones (MGDA's Frank-Wolfe, CAGrad's SLSQP as in the
authors' code, Nash-MTL's trust-region minimisation) are only as accurate as their stopping rules; the tests say how much.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else np.zeros_like(v)


def mean_ref(G: np.ndarray) -> np.ndarray:
    return G.mean(axis=0)


def pcgrad_ref(G: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Yu et al. 2020, Algorithm 1; ``orders[i]`` the random order of the other tasks for task i."""
    K = G.shape[0]
    out = np.zeros(G.shape[1])
    for i in range(K):
        g = G[i].copy()
        for j in orders[i]:
            if j == i:
                continue
            dot = g @ G[j]
            if dot < 0 and G[j] @ G[j] > 0:
                g = g - dot / (G[j] @ G[j]) * G[j]
        out += g
    return out


def mgda_two_ref(G: np.ndarray) -> np.ndarray:
    """Sener & Koltun 2018, Algorithm 1 (exact for two tasks)."""
    g1, g2 = G
    diff = g1 - g2
    if diff @ diff == 0:
        return g1.copy()
    gamma = np.clip((g2 - g1) @ g2 / (diff @ diff), 0.0, 1.0)
    return gamma * g1 + (1 - gamma) * g2


def mgda_frank_wolfe_ref(G: np.ndarray, iters: int = 3000) -> np.ndarray:
    """Sener & Koltun 2018, Algorithm 2 (Frank-Wolfe on the simplex with exact line search)."""
    K = G.shape[0]
    M = G @ G.T
    alpha = np.full(K, 1.0 / K)
    for _ in range(iters):
        t = int(np.argmin(M @ alpha))
        current = alpha @ G
        diff = G[t] - current
        if diff @ diff == 0:
            break
        gamma = np.clip(-(current @ diff) / (diff @ diff), 0.0, 1.0)
        alpha = (1 - gamma) * alpha
        alpha[t] += gamma
    return alpha @ G


def cagrad_ref(G: np.ndarray, c: float = 0.5) -> np.ndarray:
    """Liu et al. 2021, Algorithm 1, the dual solved with SLSQP as in the authors' code (without its rescaling)."""
    K = G.shape[0]
    A = G @ G.T
    g0 = G.mean(axis=0)
    sqrt_phi = c * np.linalg.norm(g0)
    b = A @ np.full(K, 1.0 / K)

    def dual(w):
        return w @ b + sqrt_phi * np.sqrt(max(w @ A @ w, 0.0) + 1e-30)

    best = None
    for start in [np.full(K, 1.0 / K)] + [np.eye(K)[i] * 0.9 + 0.1 / K for i in range(K)]:
        res = optimize.minimize(dual, start, bounds=[(0.0, 1.0)] * K, method="SLSQP",
                                constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},),
                                options={"ftol": 1e-15, "maxiter": 1000})
        if best is None or res.fun < best.fun:
            best = res
    gw = best.x @ G
    norm = np.linalg.norm(gw)
    return g0 + (sqrt_phi / norm) * gw if norm > 0 else g0


def dual_cone_projection_ref(G: np.ndarray, g: np.ndarray) -> np.ndarray:
    """argmin_{x : G x >= 0} |x - g|, through its dual: x = g + G^T lam, lam = argmin_{lam >= 0} |g + G^T lam|."""
    lam, _ = optimize.nnls(G.T, -g, maxiter=100 * G.shape[0])
    return g + G.T @ lam


def upgrad_ref(G: np.ndarray) -> np.ndarray:
    """Quinton & Rey 2024, Eq. 4: the mean of the projections of the rows onto the dual cone of the rows."""
    K = G.shape[0]
    return sum(dual_cone_projection_ref(G, G[i]) for i in range(K)) / K


def imtl_g_paper_ref(G: np.ndarray) -> np.ndarray:
    """Liu et al. 2021 (IMTL), Eq. 11-12 (needs linearly independent rows)."""
    K = G.shape[0]
    U = np.stack([_unit(g) for g in G])
    D = np.stack([G[0] - G[i] for i in range(1, K)])
    Ud = np.stack([U[0] - U[i] for i in range(1, K)])
    alpha_rest = G[0] @ Ud.T @ np.linalg.inv(D @ Ud.T)
    alpha = np.concatenate([[1.0 - alpha_rest.sum()], alpha_rest])
    return alpha @ G


def imtl_g_general_ref(G: np.ndarray) -> np.ndarray:
    """Quinton & Rey 2024's generalisation of IMTL-G: w = (G G^T)^+ |g| normalised to sum 1."""
    A = G @ G.T
    v = np.linalg.pinv(A) @ np.linalg.norm(G, axis=1)
    if abs(v.sum()) < 1e-12:
        return np.zeros(G.shape[1])
    return (v / v.sum()) @ G


def aligned_mtl_ref(G: np.ndarray, scale: str = "min") -> np.ndarray:
    """Senushkin et al. 2023, Algorithm 1, through the SVD of G = U S V^T: d = sqrt(sigma) V_r U_r^T w, w = 1/K."""
    K = G.shape[0]
    U, S, Vt = np.linalg.svd(G, full_matrices=False)
    lam = S ** 2
    r = int(np.sum(lam > lam.max() * K * np.finfo(np.float64).eps)) if lam.max() > 0 else 0
    w = np.full(K, 1.0 / K)
    if r == 0:
        return w @ G
    kept = lam[:r]
    sigma = {"min": kept.min(), "median": np.sort(kept)[(r - 1) // 2], "rmse": kept.mean()}[scale]
    return np.sqrt(sigma) * (Vt[:r].T @ (U[:, :r].T @ w))


def nash_mtl_ref(G: np.ndarray) -> np.ndarray:
    """Navon et al. 2022, Eq. 3: alpha > 0 with (G G^T alpha)_i = 1/alpha_i, the stationary point of
    ``alpha^T A alpha / 2 - sum log alpha``; minimised over z = log(alpha) by scipy's exact-Hessian trust region."""
    A = G @ G.T

    def parts(z):
        a = np.exp(z)
        return a, A @ a

    def value(z):
        a, aa = parts(z)
        return 0.5 * a @ aa - z.sum()

    def grad(z):
        a, aa = parts(z)
        return a * aa - 1.0

    def hess(z):
        a, aa = parts(z)
        return np.diag(a * aa) + a[:, None] * A * a[None, :]

    start = np.log(1.0 / np.sqrt(np.diag(A)))
    sol = optimize.minimize(value, start, jac=grad, hess=hess, method="trust-exact",
                            options={"gtol": 1e-13, "maxiter": 1000})
    return np.exp(sol.x) @ G


def config_ref(G: np.ndarray) -> np.ndarray:
    """Liu, Chu & Thuerey 2025, Eq. 2: g_u = U^+ 1 normalised, d = (sum_i g_i . g_u) g_u."""
    U = np.stack([_unit(g) for g in G])
    direction = _unit(np.linalg.pinv(U) @ np.ones(G.shape[0]))
    return (G @ direction).sum() * direction


def dcgd_ref(G: np.ndarray, variant: str = "center") -> np.ndarray:
    """Hwang & Lim 2024, Algorithms 1-3 with g_r = G[0] (PDE residual) and g_b = the sum of the other rows."""
    gr, gb = G[0], G[1:].sum(axis=0)
    g = gr + gb

    def perp(x, y):
        return x - (x @ y) / (y @ y) * y if y @ y > 0 else x

    if variant == "center":
        gc = _unit(gr) + _unit(gb)
        return (gc @ g) / (gc @ gc) * gc if gc @ gc > 1e-12 else np.zeros_like(g)
    if variant == "projection":
        if g @ gb < 0:
            return perp(gr, gb)
        if g @ gr < 0:
            return perp(gb, gr)
        return g
    if g @ gb < 0 or g @ gr < 0:
        return 0.5 * (perp(gr, gb) + perp(gb, gr))
    return g
