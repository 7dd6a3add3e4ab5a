"""Tensor-train (TT) factorised token embedding, with an optional phase encoding.

Object. The embedding matrix ``W`` (V × d) is stored as a TT-matrix: with
``V ≤ v_1·v_2·…·v_n`` and ``d ≤ d_1·d_2·…·d_n``, a row index ``i`` is written in mixed radix
``i = ((i_1·v_2 + i_2)·v_3 + i_3)…`` (row-major, ``i_1`` most significant) and a column index
``j`` likewise over ``(d_1, …, d_n)``; then

.. math::

    W[i, j] = G_1[i_1, :, j_1, :]\\,G_2[i_2, :, j_2, :]\\cdots G_n[i_n, :, j_n, :],

with cores ``G_k`` of shape ``(v_k, r_{k-1}, d_k, r_k)``, ``r_0 = r_n = 1`` and every inner
rank ``r_k = r`` (the ``rank`` argument). When the products exceed ``V`` or ``d`` the extra
rows are never looked up and the extra columns are cut off (padding, as in TT-Rec).

Phase encoding (``phase=True``). The seed documents call their embedding "holographic" and
speak of a phase encoding; the repository keeps no formula for it, so this module implements
the following reading, and only it: every core entry is complex, ``G_k = A_k ⊙ exp(iΦ_k)``
with a real amplitude ``A_k`` and a real phase ``Φ_k`` (both learned, phases initialised
uniform on ``[-π, π)``), and the embedding is the real part of the complex TT product,
``W = Re(G_1 ⋯ G_n)``. It doubles the core parameters and adds interference between the
``r^{n-1}`` rank paths (they can cancel), nothing more.

Complexity. A lookup of one token gathers one slice per core and contracts left to right:
``Σ_{k≥2} 2·(d_1⋯d_{k-1})·r_{k-1}·d_k·r_k`` real FLOPs (×4 with ``phase``: complex products),
memory ``O(d·r)`` per token — against zero FLOPs (a row copy) for ``nn.Embedding``. For
``d = 4·4·8`` and ``r = 8``: 4,096 FLOPs per token. Parameters ``Σ_k v_k·r_{k-1}·d_k·r_k``
(×2 with ``phase``) instead of ``V·d``; :meth:`TTEmbedding.compression` gives the ratio.

Examples
--------
>>> import torch
>>> emb = TTEmbedding(4096, 128, rank=8)
>>> emb.vocab_factors, emb.dim_factors
((16, 16, 16), (4, 4, 8))
>>> emb.num_params(), 4096 * 128
(5632, 524288)
>>> emb(torch.tensor([[0, 4095]])).shape
torch.Size([1, 2, 128])
>>> bool(torch.allclose(emb(torch.arange(5)), emb.dense_weight()[:5], atol=1e-6))
True

References
----------
I. Oseledets, "Tensor-Train Decomposition", SIAM J. Sci. Comput. 33 (2011).
O. Hrinchuk et al., "Tensorized Embedding Layers", Findings of EMNLP 2020.
C. Yin et al., "TT-Rec: Tensor Train for Deep Learning Recommendation Models", MLSys 2021.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = ["TTEmbedding", "factorize", "make_token_embedding"]


def _exact_factorizations(n: int, k: int, minimum: int = 1) -> list[tuple[int, ...]]:
    """All non-decreasing k-tuples of integers >= ``minimum`` whose product is ``n``."""
    if k == 1:
        return [(n,)] if n >= minimum else []
    out = []
    f = minimum
    while f ** k <= n:
        if n % f == 0:
            out.extend((f, *rest) for rest in _exact_factorizations(n // f, k - 1, f))
        f += 1
    return out


def factorize(n: int, k: int) -> tuple[int, ...]:
    """``k`` factors of at least ``n`` for a TT shape, balanced.

    The exact factorisation of ``n`` into ``k`` factors >= 2 with the smallest largest factor
    when that factor is at most twice ``⌈n^(1/k)⌉``; otherwise the smallest near-equal factors
    (``⌈n^(1/k)⌉`` or one less) whose product is ``>= n`` (padding). Factors are returned in
    ascending order.

    >>> factorize(4096, 3), factorize(8192, 3), factorize(128, 3), factorize(1021, 2)
    ((16, 16, 16), (16, 16, 32), (4, 4, 8), (32, 32))
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (the number of cores) must be a positive int, got {k!r}")
    q = math.ceil(round(n ** (1.0 / k), 9))
    exact = [f for f in _exact_factorizations(n, k, 2 if n >= 2 ** k else 1)]
    if exact:
        best = min(exact, key=lambda f: (max(f), -min(f)))
        if max(best) <= 2 * q:
            return best
    factors = [q] * k
    for i in range(k):  # shrink factors while the product still covers n
        if factors[i] > 1 and math.prod(factors) // factors[i] * (factors[i] - 1) >= n:
            factors[i] -= 1
    return tuple(sorted(factors))


def _check_factors(name: str, factors: Sequence[int], total: int) -> tuple[int, ...]:
    f = tuple(factors)
    if not f or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in f):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {factors!r}")
    if math.prod(f) < total:
        raise ValueError(f"{name} {f} multiply to {math.prod(f)} < {total}")
    return f


class TTEmbedding(nn.Module):
    """A ``V × d`` embedding stored as TT-cores of rank ``rank`` (see the module docstring).

    Parameters
    ----------
    num_embeddings, embedding_dim : int
        ``V`` and ``d``.
    rank : int
        Inner TT-rank ``r`` (>= 1; ``ValueError`` naming ``rank`` otherwise).
    n_cores : int
        Number of cores ``n`` when the factors are not given (default 3).
    vocab_factors, dim_factors : sequence of int, optional
        ``(v_1, …, v_n)`` and ``(d_1, …, d_n)``, same length, products ``>= V`` and ``>= d``
        (default :func:`factorize`).
    phase : bool
        Complex cores ``A·exp(iΦ)``, real part of the product (the phase encoding).
    init_std : float
        Target standard deviation of the embedding entries at initialisation (0.02, as the
        dense embeddings): core amplitudes are ``N(0, σ²)`` with
        ``σ^(2n)·r^(n-1) = init_std²`` (twice that with ``phase``, whose real part halves the
        variance).

    Forward: integer ids of any shape ``(…)`` -> ``(…, d)``, in the cores' dtype.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int = 8, *,
                 n_cores: int = 3, vocab_factors: Sequence[int] | None = None,
                 dim_factors: Sequence[int] | None = None, phase: bool = False,
                 init_std: float = 0.02) -> None:
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings),
                            ("embedding_dim", embedding_dim), ("rank", rank)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(phase, bool):
            raise TypeError(f"phase must be a bool, got {type(phase).__name__}")
        if not (isinstance(init_std, (int, float)) and math.isfinite(init_std) and init_std > 0):
            raise ValueError(f"init_std must be a finite number > 0, got {init_std!r}")
        vf = (factorize(num_embeddings, n_cores) if vocab_factors is None
              else _check_factors("vocab_factors", vocab_factors, num_embeddings))
        df = (factorize(embedding_dim, len(vf)) if dim_factors is None
              else _check_factors("dim_factors", dim_factors, embedding_dim))
        if len(vf) != len(df):
            raise ValueError(f"vocab_factors {vf} and dim_factors {df} must have the same "
                             f"length (one pair per core)")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.rank, self.phase = rank, phase
        self.vocab_factors, self.dim_factors = vf, df
        n = len(vf)
        self.ranks = (1, *([rank] * (n - 1)), 1)
        sigma = ((2.0 if phase else 1.0) * init_std ** 2 / rank ** (n - 1)) ** (1.0 / (2 * n))
        shapes = [(vf[k], self.ranks[k], df[k], self.ranks[k + 1]) for k in range(n)]
        self.cores = nn.ParameterList(nn.Parameter(torch.randn(s) * sigma) for s in shapes)
        self.phases = (nn.ParameterList(nn.Parameter((torch.rand(s) * 2 - 1) * math.pi)
                                        for s in shapes) if phase else None)
        # mixed-radix place values of the row index (i_1 most significant)
        place = [math.prod(vf[k + 1:]) for k in range(n)]
        self.register_buffer("_place", torch.tensor(place, dtype=torch.long), persistent=False)
        self.register_buffer("_radix", torch.tensor(vf, dtype=torch.long), persistent=False)

    # -- accounting ------------------------------------------------------------------------
    def num_params(self) -> int:
        """Parameters of the cores (and phases)."""
        return sum(p.numel() for p in self.parameters())

    def compression(self) -> float:
        """``V·d / num_params()``: how many times smaller than the dense embedding."""
        return self.num_embeddings * self.embedding_dim / self.num_params()

    def lookup_flops(self) -> int:
        """Real FLOPs of one token's lookup (left-to-right contraction, see the module)."""
        flops, width = 0, self.dim_factors[0]
        for k in range(1, len(self.dim_factors)):
            flops += 2 * width * self.ranks[k] * self.dim_factors[k] * self.ranks[k + 1]
            width *= self.dim_factors[k]
        return flops * (4 if self.phase else 1)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, rank={self.rank}, "
                f"vocab_factors={self.vocab_factors}, dim_factors={self.dim_factors}, "
                f"phase={self.phase}")

    # -- the cores -------------------------------------------------------------------------
    def _cores(self) -> list[torch.Tensor]:
        if self.phases is None:
            return list(self.cores)
        return [torch.polar(a, p) for a, p in zip(self.cores, self.phases, strict=True)]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ``W`` for integer ``ids`` (…) -> (…, d); ``IndexError`` outside [0, V)."""
        if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise TypeError(f"ids must be an integer tensor, got {ids.dtype}")
        flat = ids.reshape(-1).long()  # (N,)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.num_embeddings):
            raise IndexError(f"ids must be in [0, {self.num_embeddings}), got "
                             f"[{int(flat.min())}, {int(flat.max())}]")
        digits = (flat[:, None] // self._place) % self._radix  # (N, n)
        cores = self._cores()
        N = flat.shape[0]
        out = cores[0][digits[:, 0]].reshape(N, self.dim_factors[0], self.ranks[1])
        for k in range(1, len(cores)):
            g = cores[k][digits[:, k]]  # (N, r_{k-1}, d_k, r_k)
            out = torch.einsum("npr,nrqs->npqs", out, g).reshape(N, -1, self.ranks[k + 1])
        out = out.reshape(N, -1)[:, : self.embedding_dim]  # (N, d)
        if self.phases is not None:
            out = out.real
        return out.reshape(*ids.shape, self.embedding_dim)

    def dense_weight(self) -> torch.Tensor:
        """The full ``V × d`` matrix, contracted core by core over all indices at once (an
        independent path from :meth:`forward`'s per-token gathers; O(V·d·r) memory)."""
        cores = self._cores()
        w = cores[0].reshape(self.vocab_factors[0], self.dim_factors[0], self.ranks[1])
        for k in range(1, len(cores)):
            a, p, _ = w.shape
            w = torch.einsum("apr,brqs->abpqs", w, cores[k])
            w = w.reshape(a * self.vocab_factors[k], p * self.dim_factors[k], self.ranks[k + 1])
        w = w[: self.num_embeddings, : self.embedding_dim, 0]
        return w.real if self.phases is not None else w


def make_token_embedding(kind: str, vocab_size: int, d_model: int, rank: int = 8
                         ) -> nn.Module:
    """The token embedding of a model: ``nn.Embedding`` for ``kind="dense"``, a
    :class:`TTEmbedding` of rank ``rank`` for ``"tt"`` and ``"tt_phase"`` (phase encoding).
    """
    if kind == "dense":
        return nn.Embedding(vocab_size, d_model)
    if kind in ("tt", "tt_phase"):
        return TTEmbedding(vocab_size, d_model, rank, phase=kind == "tt_phase")
    raise ValueError(f"embedding must be one of dense, tt, tt_phase; got {kind!r}")
