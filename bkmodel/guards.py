"""Runtime certificate guards of the BK scan (docs/conventions.md §8).

For real potentials v, real hopping b and eta > 0 every output of the causal scan is a
Herglotz value: Im g_i > 0 and |g_i| <= 1/eta_i (docs/conventions.md §3), with eta and b per
channel (C,) or per token (B, N, C) (the selective scan: the bound is then per token). So
each scan can be checked cheaply, on the hot path:

* **finite** — no NaN / Inf in g;
* **Herglotz** — ``Im g_i >= -tol/eta_i``;
* **bound** — ``|g_i| <= (1 + tol)/eta_i``;
* **residual** (sampled) — at ``residual_samples`` random (batch, position, channel) the
  relative residual of the recurrence
  ``|g_i (alpha_i - beta_i g_{i-1}) - 1| / (1 + |g_i alpha_i| + |beta_i g_i g_{i-1}|) <= tol``
  (alpha_i = v_i - lam - i eta_i, beta_i = b_i^2, g_0 the initial state or 0).
  (g is float32; the residual's rounding error is a few float32 eps times the
  denominator, far below the default tol = 1e-3.)

The first three counters come from ``bk_scan(..., return_stats=True)`` — fused into the Triton
kernel on GPU, three reductions on CPU. On a violation the configured action runs:

* ``raise``          — :class:`GuardError`;
* ``recompute_fp64`` — rerun the scan in float64 (torch backend), re-check, use it (cast back)
  if it passes, else raise :class:`GuardError`;
* ``skip_step``      — set :attr:`ScanGuard.skip_requested` (the model copies it to
  ``model.last_aux["skip_step"]``; the trainer must then skip ``optimizer.step()``) and
  replace non-finite entries of g by 0 so the forward completes.

Every event is counted (:meth:`ScanGuard.report`) and logged on the ``bkmodel.guards`` logger.

**Deferred mode** (:meth:`ScanGuard.defer`, used by ``bk train --cuda-graph``): the scans
record their counters as device tensors instead of reading them, so a forward pass has no
host synchronisation and can be captured in a CUDA graph; :meth:`ScanGuard.consume_deferred`
then reads all layers' counters with one synchronisation, updates the event counters and
applies ``raise`` / ``skip_step`` after the fact. For ``recompute_fp64`` it reports the
violation so that the caller reruns the step in the immediate mode, which recomputes the
violating layers in float64 (same result as the immediate mode, the step's work twice).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import torch

from bkmodel.config import GuardConfig
from bkmodel.ops.bk_scan import bk_scan, scan_stats

__all__ = ["GuardError", "GuardEvent", "ScanGuard", "recurrence_residual"]

log = logging.getLogger("bkmodel.guards")

_KINDS = ("nonfinite", "herglotz", "bound", "residual")


class GuardError(RuntimeError):
    """A BK scan violated its runtime certificate and the configured action could not fix it."""


@dataclass
class GuardEvent:
    """One guard violation: which layer, which checks failed (counts), what was done."""

    index: int
    layer: str
    counts: dict[str, int]
    action: str
    outcome: str


def recurrence_residual(
    v: torch.Tensor,
    lam: torch.Tensor,
    eta: torch.Tensor,
    b: torch.Tensor,
    g_re: torch.Tensor,
    g_im: torch.Tensor,
    n_samples: int,
    rng: random.Random | None,
    initial_state: torch.Tensor | None = None,
) -> torch.Tensor:
    """Relative residuals of ``g_i (v_i - lam - i eta_i - b_i^2 g_{i-1}) = 1`` at random
    entries; ``eta``, ``b`` (C,) or (B, N, C), ``initial_state`` g_0 (B, C) complex or None.

    Returns a float64 tensor of ``n_samples`` values (NaN where g is not finite); see the
    module docstring for the normalisation. Cost O(n_samples). ``rng=None`` draws the
    positions from the device's default generator (what a CUDA graph replays afresh).
    """
    B, N, C = v.shape
    # indices drawn on v's device: a copy from host memory would synchronise with the GPU
    gen = None
    if rng is not None:
        gen = torch.Generator(device=v.device).manual_seed(rng.getrandbits(63))
    bi = torch.randint(0, B, (n_samples,), generator=gen, device=v.device)
    ni = torch.randint(0, N, (n_samples,), generator=gen, device=v.device)
    ci = torch.randint(0, C, (n_samples,), generator=gen, device=v.device)
    with torch.no_grad():
        d = torch.float64
        g = torch.complex(g_re[bi, ni, ci].to(d), g_im[bi, ni, ci].to(d))
        prev_n = (ni - 1).clamp(min=0)
        gp = torch.complex(g_re[bi, prev_n, ci].to(d), g_im[bi, prev_n, ci].to(d))
        g0 = (torch.zeros_like(gp) if initial_state is None
              else initial_state[bi, ci].to(torch.complex128))
        gp = torch.where(ni > 0, gp, g0)
        eta_s = eta[ci] if eta.ndim == 1 else eta[bi, ni, ci]
        b_s = b[ci] if b.ndim == 1 else b[bi, ni, ci]
        z = torch.complex(lam[ci].to(d), eta_s.to(d))
        alpha = v[bi, ni, ci].to(d) - z
        beta = b_s.to(d).square()
        r = (g * (alpha - beta * gp) - 1.0).abs()
        scale = 1.0 + (g * alpha).abs() + (beta * g * gp).abs()
        return r / scale


class ScanGuard:
    """Runs guarded BK scans and keeps the event counters of one model.

    Parameters
    ----------
    config : GuardConfig
    backend : str
        Backend of the normal (unguarded-path) scan.
    seed : int
        Seed of the sampler choosing residual positions and sampled scans.
    """

    def __init__(self, config: GuardConfig, backend: str = "auto", seed: int = 0) -> None:
        self.config = config
        self.backend = backend
        self.rng = random.Random(seed)
        self.skip_requested = False
        self.events: list[GuardEvent] = []
        self.max_events = 1000
        self.deferred: list[tuple[str, torch.Tensor]] | None = None
        self.reset()

    # -- deferred mode --------------------------------------------------------------------
    def defer(self, on: bool = True) -> None:
        """Enter (or leave) deferred mode; entering clears the pending counters."""
        self.deferred = [] if on else None

    def consume_deferred(self) -> list[str]:
        """Read the counters recorded since the last call (one host synchronisation) and
        return the layers whose certificate failed.

        Counts the scans and their violations like the immediate mode, then applies the
        action: ``raise`` raises :class:`GuardError`; ``skip_step`` sets
        :attr:`skip_requested`; ``recompute_fp64`` counts nothing for the violating pass
        (the caller reruns the step in the immediate mode, which counts and recomputes).
        """
        if self.deferred is None:
            raise RuntimeError("consume_deferred needs deferred mode (ScanGuard.defer())")
        pending = self.deferred
        if not pending:
            return []
        rows = torch.stack([c for _, c in pending]).tolist()  # (layers, 5)
        counts = [dict(zip(_KINDS, (int(x) for x in r[:4]), strict=True)) for r in rows]
        bad = [name for (name, _), c in zip(pending, counts, strict=True) if any(c.values())]
        if bad and self.config.action == "recompute_fp64":
            return bad
        for r, c, (name, _) in zip(rows, counts, pending, strict=True):
            self.counters["scans"] += 1
            self.counters["residual_checks"] += int(r[4])
            if not any(c.values()):
                continue
            self.counters["violating_scans"] += 1
            for k, n in c.items():
                self.counters[k] += int(n > 0)
            if self.config.action == "raise":
                self.counters["raised"] += 1
                self._record(name, c, "raised (deferred check)")
                raise GuardError(f"BK scan certificate violated in layer {name}: {c}")
            self.counters["skip_requests"] += 1
            self.skip_requested = True
            self._record(name, c, "step marked to skip (deferred check)")
        return bad

    def reset(self) -> None:
        """Zero every counter and forget the events."""
        self.counters: dict[str, int] = {
            "scans": 0,
            "residual_checks": 0,
            "violating_scans": 0,
            **{k: 0 for k in _KINDS},
            "recomputed_fp64": 0,
            "recovered": 0,
            "skip_requests": 0,
            "raised": 0,
        }
        self.events = []
        self.skip_requested = False

    def begin_forward(self) -> None:
        """Called by the model at the start of each forward: clears the skip request."""
        self.skip_requested = False

    def report(self) -> dict[str, int]:
        """Event counts since construction or :meth:`reset` (a copy).

        ``scans`` (guarded scans and decoding steps), ``residual_checks``,
        ``violating_scans``; per check (``nonfinite``, ``herglotz``, ``bound``, ``residual``)
        the number of scans in which it failed; per action ``recomputed_fp64``,
        ``recovered``, ``skip_requests``, ``raised``; ``events`` (logged events).
        """
        out = dict(self.counters)
        out["events"] = len(self.events)
        return out

    # -- checking -------------------------------------------------------------------------
    def _violations(self, v, lam, eta, b, g_re, g_im, stats, residual: bool,
                    g0=None) -> dict[str, int]:
        stats = stats.reshape(-1)
        if residual:
            stats = torch.cat([stats, self._residual_count(v, lam, eta, b, g_re, g_im, stats,
                                                           self.rng, g0)])
        vals = [int(x) for x in stats.tolist()]  # the one host synchronisation per scan
        return dict(zip(_KINDS, vals + [0] * (len(_KINDS) - len(vals)), strict=True))

    def _residual_count(self, v, lam, eta, b, g_re, g_im, stats, rng, g0=None) -> torch.Tensor:
        """(1,) tensor like ``stats``: sampled recurrence residuals above tol (a device
        value: nothing is read here)."""
        r = recurrence_residual(v.detach(), lam.detach(), eta.detach(), b.detach(),
                                g_re.detach(), g_im.detach(), self.config.residual_samples, rng,
                                None if g0 is None else g0.detach())
        return (~(r <= self.config.tol)).sum().reshape(1).to(stats.device, stats.dtype)

    def _assert_in_graph(self, layer, v, lam, eta, b, g_re, g_im, stats, g0=None) -> None:
        """The check while ``torch.compile`` traces (a host read or a fresh ``Generator``
        would break the graph): the violation count (non-finite, Herglotz, bound and, when
        ``sample_rate > 0``, sampled residuals at positions from the device's generator on
        every scan) becomes an in-graph ``torch._assert_async``, so a violation raises a
        ``RuntimeError`` naming the layer when the compiled graph runs — the ``raise`` action
        whatever ``action`` is, and the event counters are not updated."""
        n = stats.reshape(-1).sum()
        if self.config.sample_rate > 0.0:
            n = n + self._residual_count(v, lam, eta, b, g_re, g_im, stats.reshape(-1), None,
                                         g0).sum()
        torch._assert_async(n == 0, f"BK scan certificate violated in layer {layer} "
                            "(checked inside the compiled graph)")

    def _defer_counts(self, layer, v, lam, eta, b, g_re, g_im, stats, g0=None) -> None:
        """Append (layer, [nonfinite, herglotz, bound, residual, residual checked]) as a
        device tensor: no host synchronisation (the residual is sampled on every scan, at
        positions drawn from the device's generator)."""
        cfg = self.config
        stats = stats.reshape(-1)
        residual = cfg.sample_rate > 0.0
        if residual:
            n_res = self._residual_count(v, lam, eta, b, g_re, g_im, stats, None, g0)
        else:
            n_res = torch.zeros(1, dtype=stats.dtype, device=stats.device)
        checked = torch.full((1,), int(residual), dtype=stats.dtype, device=stats.device)
        assert self.deferred is not None
        self.deferred.append((layer, torch.cat([stats, n_res, checked])))

    def _record(self, layer: str, counts: dict[str, int], outcome: str) -> None:
        ev = GuardEvent(len(self.events), layer, counts, self.config.action, outcome)
        if len(self.events) < self.max_events:
            self.events.append(ev)
        log.warning("BK guard: layer %s violated %s -> %s (%s)", layer,
                    {k: c for k, c in counts.items() if c}, self.config.action, outcome)

    def scan(
        self,
        v: torch.Tensor,
        lam: torch.Tensor,
        eta: torch.Tensor,
        b: torch.Tensor,
        *,
        layer: str = "?",
        initial_state: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Guarded ``bk_scan(v, lam, eta, b, initial_state=...)``: returns ``(g_re, g_im)``
        (see module doc). ``eta`` and ``b`` are (C,) (per channel) or (B, N, C) (per token);
        the bounds are then checked per token."""
        cfg = self.config
        g0 = initial_state
        kw = {} if g0 is None else {"initial_state": g0}
        if not cfg.enabled:
            return bk_scan(v, lam, eta, b, backend=self.backend, **kw)
        g_re, g_im, stats = bk_scan(v, lam, eta, b, backend=self.backend, return_stats=True,
                                    tol=cfg.tol, **kw)
        if self.deferred is not None:
            self._defer_counts(layer, v, lam, eta, b, g_re, g_im, stats, g0)
            return g_re, g_im
        if torch.compiler.is_compiling():
            self._assert_in_graph(layer, v, lam, eta, b, g_re, g_im, stats, g0)
            return g_re, g_im
        self.counters["scans"] += 1
        residual = cfg.sample_rate >= 1.0 or self.rng.random() < cfg.sample_rate
        self.counters["residual_checks"] += int(residual)
        counts = self._violations(v, lam, eta, b, g_re, g_im, stats, residual, g0)
        if not any(counts.values()):
            return g_re, g_im
        self.counters["violating_scans"] += 1
        for k, c in counts.items():
            self.counters[k] += int(c > 0)
        if cfg.action == "raise":
            self.counters["raised"] += 1
            self._record(layer, counts, "raised")
            raise GuardError(f"BK scan certificate violated in layer {layer}: {counts}")
        if cfg.action == "recompute_fp64":
            self.counters["recomputed_fp64"] += 1
            d = torch.float64
            kw64 = {} if g0 is None else {"initial_state": g0.to(torch.complex128)}
            r_re, r_im = bk_scan(v.to(d), lam.to(d), eta.to(d), b.to(d), backend="torch", **kw64)
            stats64 = scan_stats(r_re.detach(), r_im.detach(), eta.detach(), cfg.tol)
            counts64 = self._violations(v, lam, eta, b, r_re, r_im, stats64, residual, g0)
            if any(counts64.values()):
                self.counters["raised"] += 1
                self._record(layer, counts, f"float64 recompute failed too: {counts64}")
                raise GuardError(
                    f"BK scan certificate violated in layer {layer}: {counts}; the float64 "
                    f"recompute fails too: {counts64}"
                )
            self.counters["recovered"] += 1
            self._record(layer, counts, "recovered by float64 recompute")
            return r_re.to(g_re.dtype), r_im.to(g_im.dtype)
        # skip_step
        self.counters["skip_requests"] += 1
        self.skip_requested = True
        self._record(layer, counts, "step marked to skip")
        return torch.nan_to_num(g_re, 0.0, 0.0, 0.0), torch.nan_to_num(g_im, 0.0, 0.0, 0.0)

    def check_step(self, g: torch.Tensor, eta: torch.Tensor, *, layer: str = "?") -> None:
        """Counters for one decoding step ``g`` (B, C) complex, ``eta`` (C,) (per channel)
        or (B, C) (this token's); raises only for ``raise``."""
        cfg = self.config
        if not cfg.enabled:
            return
        eta = eta.detach() if eta.ndim == 1 else eta.detach()[:, None]  # (C,) or (B, 1, C)
        stats = scan_stats(g.real[:, None], g.imag[:, None], eta, cfg.tol)
        self.counters["scans"] += 1
        counts = dict(zip(_KINDS, [int(x) for x in stats.tolist()] + [0], strict=True))
        if not any(counts.values()):
            return
        self.counters["violating_scans"] += 1
        for k, c in counts.items():
            self.counters[k] += int(c > 0)
        if cfg.action == "raise":
            self.counters["raised"] += 1
            self._record(layer, counts, "raised (decoding)")
            raise GuardError(f"BK decoding step violated its certificate in layer {layer}: "
                             f"{counts}")
        self._record(layer, counts, "logged (decoding; state already float64)")
