"""The selective BK layer's operator: edge Green's functions of dissipative Jacobi chains.

Theorem (docs/theory.md, "Dissipative edge Green's function"). Let ``H = tridiag(b, v, b)``
on sites 1..N with real v_i, real hoppings b_i (b_i links sites i−1 and i), λ real and a
per-site absorption Γ = diag(η_i), η_i > 0. The edge Green's functions

    g_i = [(H_{1..i} − λ − iΓ_{1..i})^{-1}]_{ii}

obey ``g_1 = 1/(v_1 − λ − iη_1)``, ``g_i = 1/(v_i − λ − iη_i − b_i² g_{i−1})`` (Schur
complement of the leading block), and for every i: ``Im g_i > 0`` and ``|g_i| ≤ 1/η_i``.
Proof: by induction, Im g_{i−1} ≥ 0 and b_i² ≥ 0 give ``Im(v_i − λ − iη_i − b_i² g_{i−1})
≤ −η_i``, so the denominator d_i has |d_i| ≥ η_i and Im g_i = −Im d_i / |d_i|² > 0.
The bound is per site: it uses the site's own η_i, not the chain's smallest or largest.

Checks: the recurrence equals the dense inverse's edge entry (float64) and the mpmath
continued fraction at 40 digits; the per-site bounds hold on random chains whose η spans
1e-6 … 1 and whose b spans 0.1 … 3. Negative controls: a chain with one site of η_j < 0
(not dissipative) breaks the bound, and the tempting uniform bound ``|g_i| ≤ 1/max_j η_j``
is false.
"""

from __future__ import annotations

import mpmath
import numpy as np

from bkmath.certificate import Certificate, Kind, timed
from bkmath.checks.profile import Profile

__all__ = ["check_dissipative_herglotz", "check_green_resolvent", "edge_green_recurrence",
           "green_matrix_rows"]

EPS = float(np.finfo(np.float64).eps)


def edge_green_recurrence(v: np.ndarray, lam: float, eta: np.ndarray,
                          b: np.ndarray) -> np.ndarray:
    """``g_i = 1/(v_i − λ − iη_i − b_i² g_{i−1})``, ``g_0 = 0``, in complex128; O(N).

    ``b[0]`` is unused (nothing precedes site 1). This is the float64 form of the model's
    selective BK scan (``bkmodel.ops.bk_scan`` with per-token eta and b).
    """
    g = np.empty(len(v), dtype=np.complex128)
    prev = 0j
    for i in range(len(v)):
        prev = 1.0 / (v[i] - lam - 1j * eta[i] - b[i] ** 2 * prev)
        g[i] = prev
    return g


def _dense_edge(v, lam, eta, b) -> np.ndarray:
    """[(H_{1..i} − λ − iΓ)^{-1}]_{ii} for every i from dense inverses (O(N^4): small N)."""
    n = len(v)
    out = np.empty(n, dtype=np.complex128)
    for i in range(1, n + 1):
        m = np.diag(np.asarray(v[:i], dtype=np.complex128) - lam - 1j * np.asarray(eta[:i]))
        if i > 1:
            off = np.asarray(b[1:i], dtype=np.float64)
            m += np.diag(off, 1) + np.diag(off, -1)
        out[i - 1] = np.linalg.inv(m)[i - 1, i - 1]
    return out


def _mp_edge(v, lam, eta, b, dps: int = 40) -> list:
    with mpmath.workdps(dps):
        prev, out = mpmath.mpc(0), []
        for i in range(len(v)):
            prev = 1 / (mpmath.mpf(float(v[i])) - mpmath.mpf(lam)
                        - 1j * mpmath.mpf(float(eta[i])) - mpmath.mpf(float(b[i])) ** 2 * prev)
            out.append(prev)
        return out


def _chain(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    v = rng.normal(size=n) * rng.choice([0.3, 1.0, 3.0])
    eta = 10.0 ** rng.uniform(-6, 0, size=n)
    b = 10.0 ** rng.uniform(-1, np.log10(3.0), size=n) * rng.choice([-1.0, 1.0], size=n)
    lam = float(rng.uniform(-2.5, 2.5))
    return v, lam, eta, b


def _bound_stats(g: np.ndarray, eta: np.ndarray) -> tuple[float, float, int]:
    """(min Im g_i/|g_i|, max η_i |g_i|, site of the max)."""
    a = np.abs(g)
    r = eta * a
    return float(np.min(g.imag / a)), float(np.max(r)), int(np.argmax(r))


def check_dissipative_herglotz(profile: Profile) -> list[Certificate]:
    """Dissipative Jacobi chains: Im g_i > 0, |g_i| <= 1/eta_i per site (selective BK layer)"""
    rng = np.random.default_rng(2026)
    n_chains = profile.pick(quick=20, default=200, thorough=2000)
    n_sites = profile.pick(quick=64, default=512, thorough=4096)
    tol = 8 * EPS  # one rounding in the last reciprocal and in |g|, as for real z (§3)
    certs = []

    # 1. identity: recurrence = dense edge entry (small chains) = mpmath (40 digits)
    with timed() as t:
        worst_dense, worst_mp = 0.0, 0.0
        for _ in range(profile.pick(quick=5, default=20, thorough=60)):
            v, lam, eta, b = _chain(rng, 24)
            eta = np.maximum(eta, 1e-3)  # keep the dense inverse well conditioned
            g = edge_green_recurrence(v, lam, eta, b)
            d = _dense_edge(v, lam, eta, b)
            worst_dense = max(worst_dense, float(np.max(np.abs(g - d) / np.abs(d))))
            gm = _mp_edge(v, lam, eta, b)
            with mpmath.workdps(40):
                err = max(float(abs(mpmath.mpc(complex(x)) - y) / abs(y))
                          for x, y in zip(g, gm, strict=True))
            worst_mp = max(worst_mp, err)
    # the dense inverse's edge entry has a relative error <= cond · eps; with η >= 1e-3 and
    # |entries| <= 10, cond <= 1e4 — allow 1e5 eps for both comparisons
    id_tol = 1e5 * EPS
    certs.append(Certificate.from_bound(
        "dissipative_edge_green_identity",
        "g_i from g_i = 1/(v_i − λ − iη_i − b_i² g_{i−1}) equals [(H_{1..i} − λ − iΓ)^{-1}]_{ii} "
        "(dense inverse) and the 40-digit mpmath recurrence",
        value=max(worst_dense, worst_mp), bound=id_tol, tol=id_tol,
        inputs={"seed": 2026, "N": 24, "η >= ": 1e-3},
        precision="float64 vs numpy.linalg.inv and mpmath dps=40",
        tolerance_reason="relative error <= cond(H − z)·eps of the dense inverse, cond <= 1e4",
        wall_time=t["seconds"],
        details={"max rel err vs dense": worst_dense, "max rel err vs mpmath": worst_mp},
    ))

    # 2. the per-site Herglotz bound, and the two negative controls
    def run(control: str | None) -> Certificate:
        worst_im, worst_r, case = np.inf, -np.inf, None
        with timed() as t:
            for k in range(n_chains):
                v, lam, eta, b = _chain(rng, n_sites)
                bound_eta = eta
                if control == "negative_eta":
                    eta = eta.copy()
                    j = int(rng.integers(1, n_sites))
                    eta[j] = -0.5  # site j amplifies instead of absorbing
                    bound_eta = np.abs(eta)
                elif control == "uniform_bound":
                    bound_eta = np.full_like(eta, eta.max())
                g = edge_green_recurrence(v, lam, eta, b)
                mi, r, site = _bound_stats(g, bound_eta)
                if r > worst_r or mi < worst_im:
                    if case is None or r > 1 + tol or mi < -tol:
                        case = {"chain": k, "N": n_sites, "lam": lam, "site": site,
                                "g": complex(g[site]), "eta_site": float(eta[site]),
                                "eta used in the bound": float(bound_eta[site]),
                                "eta |g| at the site": r, "min Im g/|g|": mi}
                worst_im, worst_r = min(worst_im, mi), max(worst_r, r)
        stmt = {
            None: "For real v, b, λ and η_i > 0: Im g_i > 0 and |g_i| <= 1/η_i for every site i "
                  "of the dissipative Jacobi chain (the selective BK layer's Herglotz bound)",
            "negative_eta": "NEGATIVE CONTROL: the same bounds (with |η_j|) when one site has "
                            "η_j = −0.5 < 0 (not dissipative)",
            "uniform_bound": "NEGATIVE CONTROL: the uniform bound |g_i| <= 1/max_j η_j",
        }[control]
        # the claim is max η|g| <= 1 and min Im g/|g| >= 0, both up to tol: one margin
        value = max(worst_r - 1.0, -worst_im)
        return Certificate.from_bound(
            "dissipative_herglotz" + ("" if control is None else f"_{control}"), stmt,
            value=value, bound=tol, tol=tol,
            kind=Kind.THEOREM if control is None else Kind.NEGATIVE_CONTROL,
            counterexample=case,
            hypotheses={"v, b, λ real": True, "η_i > 0 for all i": control != "negative_eta"},
            inputs={"seed": 2026, "chains": n_chains, "N": n_sites, "η": "10^U(−6, 0)",
                    "|b|": "10^U(−1, log10 3)", "λ": "U(−2.5, 2.5)"},
            precision="float64",
            tolerance_reason="one rounding of the final reciprocal and of |g| (8 eps)",
            wall_time=t["seconds"],
            details={"max η|g| − 1": worst_r - 1.0, "min Im g/|g|": worst_im, "worst": case},
        )

    certs += [run(None), run("negative_eta"), run("uniform_bound")]
    return certs


# --------------------------------------------------------------------------------------------
# The off-diagonal resolvent: Green's-function attention (bkmodel.model.GreenBKLayer)
# --------------------------------------------------------------------------------------------
def green_matrix_rows(v: np.ndarray, lam: float, eta: np.ndarray, b: np.ndarray
                      ) -> np.ndarray:
    """Lower triangle ``G[i, j] = [(H_{1..i} − λ − iΓ_{1..i})^{-1}]_{ij}``, j <= i, O(N^2).

    By the product formula ``G(i, j) = g_j ∏_{k=j+1..i} (−b_k g_k)`` with the edge Green's
    functions g of :func:`edge_green_recurrence` (one cumulative product per column, so no
    ratio of large and small products is ever formed). Entries above the diagonal are 0.
    """
    g = edge_green_recurrence(v, lam, eta, b)
    a = -np.asarray(b) * g
    n = len(g)
    out = np.zeros((n, n), dtype=np.complex128)
    for j in range(n):
        out[j, j] = g[j]
        if j + 1 < n:
            out[j + 1:, j] = g[j] * np.cumprod(a[j + 1:])
    return out


def _dense_rows(v, lam, eta, b) -> np.ndarray:
    """Row i of the dense inverse of the leading i x i block, for every i (O(N^4))."""
    n = len(v)
    out = np.zeros((n, n), dtype=np.complex128)
    for i in range(1, n + 1):
        m = np.diag(np.asarray(v[:i], dtype=np.complex128) - lam - 1j * np.asarray(eta[:i]))
        if i > 1:
            off = np.asarray(b[1:i], dtype=np.float64)
            m += np.diag(off, 1) + np.diag(off, -1)
        out[i - 1, :i] = np.linalg.inv(m)[i - 1]
    return out


def _mp_green(v, lam, eta, b, i: int, j: int, dps: int = 40):
    """G(i, j) (0-based, j <= i) by the product formula in mpmath at ``dps`` digits."""
    g = _mp_edge(v, lam, eta, b, dps)
    with mpmath.workdps(dps):
        out = g[j]
        for k in range(j + 1, i + 1):
            out *= -mpmath.mpf(float(b[k])) * g[k]
        return out


def check_green_resolvent(profile: Profile) -> list[Certificate]:
    """Green's-function attention: G(i,j) product formula, Ward identity, pair bound"""
    rng = np.random.default_rng(2027)
    n_chains = profile.pick(quick=8, default=40, thorough=400)
    n_sites = profile.pick(quick=64, default=192, thorough=1024)
    certs = []

    # 1. identity: product formula = dense inverse rows = mpmath; the state recurrence
    with timed() as t:
        worst_dense, worst_mp, worst_state = 0.0, 0.0, 0.0
        for _ in range(profile.pick(quick=4, default=12, thorough=40)):
            v, lam, eta, b = _chain(rng, 20)
            eta = np.maximum(eta, 1e-3)
            G = green_matrix_rows(v, lam, eta, b)
            D = _dense_rows(v, lam, eta, b)
            scale = np.abs(D).max(axis=1, keepdims=True)  # row-wise: entries decay along rows
            worst_dense = max(worst_dense, float(np.max(np.abs(G - D) / scale)))
            i, j = 19, int(rng.integers(0, 20))
            ref = _mp_green(v, lam, eta, b, i, j)
            with mpmath.workdps(40):
                worst_mp = max(worst_mp, float(abs(mpmath.mpc(complex(G[i, j])) - ref)
                                               / abs(ref)))
            # S_i = a_i S_{i-1} + g_i s_i  equals  ((H_{1..i} − z)^{-1} s)_i  for a source s
            s = rng.normal(size=20) + 1j * rng.normal(size=20)
            g = edge_green_recurrence(v, lam, eta, b)
            S, rec = 0j, []
            for k in range(20):
                S = -b[k] * g[k] * S + g[k] * s[k] if k else g[k] * s[k]
                rec.append(S)
            direct = D @ s  # row i of the i x i inverse times s_{1..i}
            worst_state = max(worst_state, float(np.max(np.abs(np.array(rec) - direct)
                                                        / np.abs(direct).max())))
    id_tol = 1e5 * EPS  # cond(M) <= 1e4 with eta >= 1e-3, as for the edge identity
    certs.append(Certificate.from_bound(
        "green_resolvent_identity",
        "G(i,j) = g_j prod_{k=j+1..i}(−b_k g_k) equals [(H_{1..i} − λ − iΓ)^{-1}]_{ij} (dense "
        "inverse, 40-digit mpmath), and S_i = −b_i g_i S_{i−1} + g_i s_i equals "
        "((H_{1..i} − λ − iΓ)^{-1} s)_i",
        value=max(worst_dense, worst_mp, worst_state), bound=id_tol, tol=id_tol,
        inputs={"seed": 2027, "N": 20, "η >= ": 1e-3},
        precision="float64 vs numpy.linalg.inv and mpmath dps=40",
        tolerance_reason="error <= cond(H − z)·eps of the dense inverse (row-scaled), cond <= 1e4",
        wall_time=t["seconds"],
        details={"max row-relative err vs dense": worst_dense,
                 "rel err vs mpmath": worst_mp, "state recurrence err": worst_state},
    ))

    # 2. Ward identity Im G(i,i) = sum_j η_j |G(i,j)|^2 (equality) and the pair bound
    #    |G(i,j)| <= (η_i η_j)^{-1/2}; negative controls: one amplifying site, and the
    #    tempting bound |G(i,j)| <= 1/max(η_i, η_j)
    def run(control: str | None) -> Certificate:
        worst_ward, worst_r, case = 0.0, -np.inf, None
        with timed() as t:
            for c in range(n_chains):
                v, lam, eta, b = _chain(rng, n_sites)
                if control == "negative_eta":  # an eighth of the sites amplify
                    eta = eta.copy()
                    eta[rng.choice(np.arange(1, n_sites), n_sites // 8, replace=False)] = -0.5
                G = green_matrix_rows(v, lam, eta, b)
                ae = np.abs(eta)
                if control == "max_bound":
                    bound = 1.0 / np.maximum(ae[:, None], ae[None, :])
                else:
                    bound = 1.0 / np.sqrt(ae[:, None] * ae[None, :])
                ratio = np.tril(np.abs(G) / bound)
                r = float(ratio.max())
                if control is None:
                    ward = (np.abs(G) ** 2 * eta[None, :]).sum(axis=1)
                    worst_ward = max(worst_ward, float(np.max(np.abs(ward - G.diagonal().imag)
                                                              / G.diagonal().imag)))
                if r > worst_r:
                    i, j = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
                    case = {"chain": c, "N": n_sites, "lam": lam, "i": int(i), "j": int(j),
                            "G(i,j)": complex(G[i, j]), "eta_i": float(eta[i]),
                            "eta_j": float(eta[j]), "|G(i,j)| / bound": r}
                    worst_r = r
        ward_tol = 8.0 * n_sites * EPS  # N positive terms, each a product of <= N roundings
        tol = 8.0 * n_sites * EPS
        stmt = {
            None: "For a dissipative Jacobi chain (real v, b, λ; η_k > 0): the Ward identity "
                  "Im G(i,i) = Σ_j η_j |G(i,j)|² and |G(i,j)| <= (η_i η_j)^{-1/2} for all j <= i",
            "negative_eta": "NEGATIVE CONTROL: |G(i,j)| <= (|η_i| |η_j|)^{-1/2} when one site "
                            "has η = −0.5 (not dissipative)",
            "max_bound": "NEGATIVE CONTROL: the tempting bound |G(i,j)| <= 1/max(η_i, η_j)",
        }[control]
        out = []
        if control is None:
            out.append(Certificate.from_bound(
                "green_ward_identity",
                "Ward identity of the dissipative chain: Im G(i,i) = Σ_{j<=i} η_j |G(i,j)|² "
                "(relative error), G from the product formula",
                value=worst_ward, bound=ward_tol, tol=ward_tol,
                inputs={"seed": 2027, "chains": n_chains, "N": n_sites},
                precision="float64", tolerance_reason="a sum of N positive terms, each a "
                "product of <= N roundings: 8 N eps", wall_time=t["seconds"],
                details={"max Ward rel err": worst_ward}))
        return out + [Certificate.from_bound(
            "green_resolvent_bound" + ("" if control is None else f"_{control}"), stmt,
            value=worst_r - 1.0, bound=tol, tol=tol,
            kind=Kind.THEOREM if control is None else Kind.NEGATIVE_CONTROL,
            counterexample=case,
            hypotheses={"v, b, λ real": True, "η_k > 0 for all k": control != "negative_eta"},
            inputs={"seed": 2027, "chains": n_chains, "N": n_sites, "η": "10^U(−6, 0)",
                    "|b|": "10^U(−1, log10 3)", "λ": "U(−2.5, 2.5)"},
            precision="float64",
            tolerance_reason="products of up to N factors and sums of N terms: 8 N eps",
            wall_time=t["seconds"],
            details={"max |G|/bound − 1": worst_r - 1.0, "worst": case},
        )]

    certs += run(None) + run("negative_eta") + run("max_bound")
    return certs
