"""Green's-function attention: the response of a dissipative BK chain to k v^T sources.

``y_i = q_i^T S_i``, ``S_i = sum_{j<=i} G(i, j) k_j v_j^T``, where ``G(i, j)`` are the
entries of the truncated resolvent of each head's Jacobi operator (``naive.py`` states the
identity; docs/theory.md proves the bound ``|G(i, j)| <= 1/eta_min``). Backends:

* ``naive`` — the token-by-token recurrence (reference, ``naive.py``);
* ``chunk`` — the chunked matmul form with complex tensors (``chunk.py``);
* ``real``  — the same chunks in real arithmetic only (``real.py``): two real scalar-decay
  linear attentions sharing K and V, friendly to ``torch.compile``;
* ``triton`` — fused Triton kernels of the real form, forward and backward
  (``triton_chunk.py``); float32 accumulation, dk and dv powers of two >= 16;
* ``triton_par`` — the same maths by chunk-parallel Triton kernels (``triton_chunk_par.py``:
  per-chunk states, a short sequential scan over chunks, per-chunk outputs and gradients).

Every backend takes and returns complex ``g, a, y, S`` here; the real and Triton forms are
split into real parts at this boundary. The model picks one with
:func:`resolve_green_backend` from its ``scan_backend`` setting.
"""

from __future__ import annotations

import importlib.util

import torch

from bkmodel.ops.green_attn.chunk import green_attention_chunked
from bkmodel.ops.green_attn.naive import green_attention_naive
from bkmodel.ops.green_attn.real import check_qkv, green_attention_real

__all__ = ["REAL_PAIR_BACKENDS", "green_attention", "green_attention_chunked",
           "green_attention_naive", "green_attention_pair", "green_attention_real",
           "green_step", "resolve_green_backend", "triton_supports"]

_GREEN_BACKENDS = ("naive", "chunk", "real", "triton", "triton_par")
_SCAN_TO_GREEN = {"torch": "chunk", "naive": "naive"}


# Looked up once, without importing triton (resolve_green_backend runs inside forward, also
# under torch.compile, where an import would break the graph).
_HAS_TRITON = importlib.util.find_spec("triton") is not None


def _triton_available() -> bool:
    """True when the ``triton`` package is installed."""
    return _HAS_TRITON


def triton_supports(dk: int, dv: int, chunk_size: int) -> bool:
    """Whether the Triton backend takes these sizes: dk a power of two in [16, 256], dv a
    power of two >= 16, chunk_size a power of two in [16, 128]."""
    def pow2(n: int) -> bool:
        return isinstance(n, int) and n > 0 and n & (n - 1) == 0
    return (pow2(dk) and 16 <= dk <= 256 and pow2(dv) and dv >= 16 and pow2(chunk_size)
            and 16 <= chunk_size <= 128)


def resolve_green_backend(scan_backend: str, device: torch.device | str,
                          sizes: tuple[int, int, int] | None = None) -> str:
    """The Green's-attention backend that matches a model's ``scan_backend`` setting.

    ``"auto"`` -> ``"triton_par"`` on CUDA when Triton imports and (when ``sizes = (dk, dv,
    chunk_size)`` is given) :func:`triton_supports` them, else ``"chunk"`` (on the H200,
    2026-12-04, bf16 forward + backward: triton_par 2.89 ms vs triton 3.02 ms at B 8, T 2048,
    and 3.51 vs 9.47 ms at B 1, T 16,384, H 4, dk = dv = 64; ``python
    benchmarks/bench_green_attn.py --device cuda --dtype bfloat16 --backends
    chunk,triton,triton_par``);
    ``"torch"`` -> ``"chunk"``; ``"triton"`` -> ``"triton"`` (``ValueError`` naming
    ``scan_backend`` when Triton does not import; unsupported sizes are the kernel's
    ``ValueError``); ``"naive"`` -> ``"naive"``.
    """
    dev = torch.device(device)
    if scan_backend == "auto":
        ok = sizes is None or triton_supports(*sizes)
        return "triton_par" if dev.type == "cuda" and _triton_available() and ok else "chunk"
    if scan_backend == "triton":
        if not _triton_available():
            raise ValueError("scan_backend='triton' needs the triton package, which is not "
                             "installed here")
        return "triton"
    if scan_backend in _SCAN_TO_GREEN:
        return _SCAN_TO_GREEN[scan_backend]
    raise ValueError(f"scan_backend must be one of 'auto', 'torch', 'triton', 'naive', got "
                     f"{scan_backend!r}")


def green_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                    a: torch.Tensor, *, reset: torch.Tensor | None = None,
                    initial_state: torch.Tensor | None = None, backend: str = "chunk",
                    chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Green's-function attention (see the package docstring); returns (y, S_T).

    Shapes: q, k (B, T, H, dk); v (B, T, H, dv); g, a (B, T, H) complex; reset (B, T) bool;
    initial_state (B, H, dk, dv) complex. ``backend`` is one of ``"naive"``, ``"chunk"``,
    ``"real"``, ``"triton"``, ``"triton_par"`` (see the package docstring); y and S_T are
    complex whatever the backend (the real and Triton forms are split and recombined here).
    ``ValueError`` naming the argument on a mismatch.
    """
    B, T, H, dk = check_qkv(q, k, v)
    for name, t in (("g", g), ("a", a)):
        if t.shape != (B, T, H) or not t.is_complex():
            raise ValueError(f"{name} must be a complex tensor of shape {(B, T, H)}, got "
                             f"{t.dtype} {tuple(t.shape)}")
    if reset is not None and (reset.shape != (B, T) or reset.dtype != torch.bool):
        raise ValueError(f"reset must be a bool tensor of shape {(B, T)}, got "
                         f"{reset.dtype} {tuple(reset.shape)}")
    if initial_state is not None and (initial_state.shape != (B, H, dk, v.shape[-1])
                                      or not initial_state.is_complex()):
        raise ValueError(f"initial_state must be complex of shape {(B, H, dk, v.shape[-1])}, "
                         f"got {initial_state.dtype} {tuple(initial_state.shape)}")
    if backend == "naive":
        if reset is not None:
            a = torch.where(reset[..., None], torch.zeros((), dtype=a.dtype, device=a.device), a)
        return green_attention_naive(q, k, v, g, a, initial_state=initial_state)
    if backend == "chunk":
        if not (isinstance(chunk_size, int) and chunk_size >= 1):
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        return green_attention_chunked(q, k, v, g, a, reset=reset, initial_state=initial_state,
                                       chunk_size=chunk_size)
    if backend in REAL_PAIR_BACKENDS:
        s0 = None if initial_state is None else (initial_state.real, initial_state.imag)
        y_re, y_im, (s_re, s_im) = green_attention_pair(
            q, k, v, g.real, g.imag, a.real, a.imag, reset=reset, initial_state=s0,
            backend=backend, chunk_size=chunk_size)
        return torch.complex(y_re, y_im), torch.complex(s_re, s_im)
    raise ValueError(f"backend must be one of {_GREEN_BACKENDS}, got {backend!r}")


#: the backends computed in real arithmetic (:func:`green_attention_pair`)
REAL_PAIR_BACKENDS = ("real", "triton", "triton_par")


def green_attention_pair(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         g_re: torch.Tensor, g_im: torch.Tensor, a_re: torch.Tensor,
                         a_im: torch.Tensor, *, reset: torch.Tensor | None = None,
                         initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
                         backend: str = "real", chunk_size: int = 64
                         ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """:func:`green_attention` on real and imaginary parts, for the backends of
    :data:`REAL_PAIR_BACKENDS`: ``(y_re, y_im, (S_re, S_im))``, no complex tensor in or out
    (the layer feeds ``[Re y, Im y]`` straight on). Arguments as the backends' functions
    (``real.green_attention_real``; the Triton ones are imported here, on first use);
    ``ValueError`` naming the argument on a mismatch or an unknown ``backend``."""
    if backend == "real":
        fn = green_attention_real
    elif backend == "triton_par":
        from bkmodel.ops.green_attn.triton_chunk_par import green_attention_triton_par as fn
    elif backend == "triton":
        from bkmodel.ops.green_attn.triton_chunk import green_attention_triton as fn
    else:
        raise ValueError(f"backend must be one of {REAL_PAIR_BACKENDS} here, got {backend!r}")
    return fn(q, k, v, g_re, g_im, a_re, a_im, reset=reset, initial_state=initial_state,
              chunk_size=chunk_size)


def green_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
               a: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step: ``S <- a S + g k v^T``, ``y = q^T S``.

    q, k (B, H, dk); v (B, H, dv); g, a (B, H) complex; state (B, H, dk, dv) complex or None.
    Returns (y (B, H, dv) complex, S). O(H dk dv) per token, independent of the position.
    """
    cdt = torch.promote_types(g.dtype, torch.complex64)
    kv = k.to(cdt)[..., :, None] * v.to(cdt)[..., None, :]
    S = g.to(cdt)[..., None, None] * kv
    if state is not None:
        S = S + a.to(cdt)[..., None, None] * state.to(cdt)
    return torch.einsum("bhk,bhkv->bhv", q.to(cdt), S), S
