"""Per-token early exit (adaptive depth) for trained ResNet-BK and Transformer models.

Object. :class:`EarlyExit` wraps a trained :class:`~bkmodel.model.LanguageModel` or
:class:`~bkmodel.baseline.TransformerBaseline` without touching its forward: it runs the
model's own embedding, blocks, final norm and head, one block at a time, and after every block
``l < L - 1`` decides per token whether to stop. A token that stops at block ``e`` is predicted
from ``head(LN_f(x_e))``, the intermediate residual stream through the *same* final norm and
LM head ("exit"); the last block always exits.

Convention (state propagation, as in CALM, Schuster et al. 2022). Later tokens still need a
halted token's entries in the deeper layers' sequence mixing (the BK chains' recurrence, the
Transformer's keys and values), so the halted token's hidden state is *copied* upwards:
``x_{l+1} = x_l`` for it, and the deeper layers compute only what the mixing reads from it.
The logits therefore depend on which tokens halted, and each threshold is a forward of its
own. Halting at token i depends on tokens <= i only (causality is kept).

Rules (:class:`HaltingRule`):

* ``none`` — every token runs every block (the model itself, bit for bit);
* ``static`` — every token exits after block ``exit_layer`` (the truncated model: a control);
* ``scattering`` — the seeds' "scattering halting", from the BK layer's outputs ``g_re``,
  ``g_im`` (B, T, S) of the block just run (ResNet-BK only): halt when a statistic in (0, 1]
  reaches ``threshold``. ``statistic="coherence"``: ``|Σ_c g_c| / Σ_c |g_c|``, how aligned
  the chains' Green's functions are in phase; ``statistic="phase"``: ``arg(Σ_c g_c)/π`` in
  (0, 1) (``Im g > 0``), the router's phase of docs/conventions.md §8. Needs no head
  evaluation to decide;
* ``confidence`` — the training-free learned-model baseline: halt when the exit's maximum
  softmax probability reaches ``threshold`` (CALM's softmax confidence). It needs the head at
  every block the token passes;
* ``ponder`` — the learned halting baseline (PonderNet, Banino et al. 2021): a halting head per
  block ``n < L - 1`` (:class:`PonderHalting`: an affine-free layer norm of ``x_n``, a linear
  map ``d_model -> 1`` and a sigmoid) gives ``lambda_n = P(halt at n | not halted before)``;
  halt at the first block with ``lambda_n >= threshold``. The heads are trained by
  :func:`train_ponder_halting` with the PonderNet loss (:func:`ponder_loss`)
  ``Σ_n p_n CE_n + beta · KL(p || geometric(lambda_p))``, ``p_n = lambda_n Π_{m<n}(1 -
  lambda_m)`` (:func:`halting_distribution`; the last block takes the remaining mass), **with
  the model's weights frozen**: only the heads learn, so every rule is a halting policy on the
  *same* trained model (the ``none`` row is unchanged and the exits are the same read-outs the
  other rules use; training the model jointly would improve its intermediate exits — deep
  supervision — and the comparison would no longer be of halting rules).

A halting ``threshold`` outside the open interval (0, 1) is a ``ValueError`` naming it; a
threshold close to 1 halts no token early and reproduces the model exactly (tested).

FLOPs (:meth:`EarlyExit.flop_costs`, from :mod:`bkmodel.flops`' per-layer forward counts for
the window length T, per token). A token exiting at block ``e`` is charged the full blocks
``0..e``, the *state* part of the deeper blocks (ResNet-BK: the input projection, convolution
and scan that feed the chains; Transformer: the key and value projections), one head
evaluation for ``none``/``static``/``scattering``/``ponder`` and ``e + 1`` for ``confidence``,
for ``scattering`` about ``6·S`` (coherence) or ``2·S`` (phase) elementwise FLOPs per
evaluated block, and for ``ponder`` ``7·d + 4`` per evaluated block (the head's ``2·d`` product
and, like the scattering statistics, its elementwise work: ``5·d`` for the norm, 4 for the
sigmoid). These are the FLOPs an implementation that skips the halted tokens' other work would
spend; this wrapper itself runs every block on every token (it measures, it does not save
time), so its wall time is not the measurement.

Examples
--------
>>> import torch
>>> from bkmodel import LanguageModel
>>> m = LanguageModel(vocab_size=64, d_model=16, n_layers=3, n_seq=8, n_channels=4).eval()
>>> ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
>>> ee = EarlyExit(m)
>>> out = ee(ids, HaltingRule("none"))
>>> bool(torch.equal(out.logits, m(ids)[0])), out.exit_layer.unique().tolist()
(True, [2])
>>> ee(ids, HaltingRule("static", exit_layer=0)).exit_layer.unique().tolist()
[0]
>>> HaltingRule("scattering", threshold=1.0)
Traceback (most recent call last):
...
ValueError: threshold must be in (0, 1) (open interval), got 1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bkmodel.flops import model_flops

__all__ = ["RULES", "STATISTICS", "EarlyExit", "EarlyExitOutput", "HaltingRule",
           "PonderHalting", "evaluate_early_exit", "geometric_prior", "halting_distribution",
           "ponder_loss", "train_ponder_halting"]

RULES = ("none", "static", "scattering", "confidence", "ponder")
_THRESHOLD_RULES = ("scattering", "confidence", "ponder")
STATISTICS = ("coherence", "phase")
#: elementwise FLOPs per scanned chain of each scattering statistic (sums, moduli)
_STAT_FLOPS = {"coherence": 6, "phase": 2}
#: names of the ResNet-BK per-layer FLOP rows that feed the chains (the state part)
_BK_STATE_ROWS = ("bk.in_proj", "bk.conv", "bk.scan", "bk.v_proj", "bk.v_moe")


@dataclass(frozen=True)
class HaltingRule:
    """When a token stops (see the module docstring).

    Parameters
    ----------
    kind : {"none", "static", "scattering", "confidence", "ponder"}
    threshold : float in (0, 1), open
        ``scattering``, ``confidence`` and ``ponder``: halt when the statistic (for
        ``ponder`` the learned ``lambda_n``) is ``>= threshold``.
    statistic : {"coherence", "phase"}
        ``scattering`` only.
    exit_layer : int
        ``static`` only: the block after which every token exits (``0 <= exit_layer``; the
        model checks ``< n_layers``).
    """

    kind: str = "none"
    threshold: float | None = None
    statistic: str = "coherence"
    exit_layer: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"kind must be one of {', '.join(RULES)}; got {self.kind!r}")
        if self.kind in _THRESHOLD_RULES:
            t = self.threshold
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                raise ValueError(f"threshold must be a number in (0, 1) for kind="
                                 f"{self.kind!r}, got {t!r}")
            if not (math.isfinite(t) and 0.0 < t < 1.0):
                raise ValueError(f"threshold must be in (0, 1) (open interval), got {t!r}")
        elif self.threshold is not None:
            raise ValueError(f"threshold is only used by scattering/confidence/ponder, not "
                             f"kind={self.kind!r}")
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}; got "
                             f"{self.statistic!r}")
        if self.kind == "static":
            e = self.exit_layer
            if isinstance(e, bool) or not isinstance(e, int) or e < 0:
                raise ValueError(f"exit_layer must be an int >= 0 for kind='static', got {e!r}")
        elif self.exit_layer is not None:
            raise ValueError(f"exit_layer is only used by kind='static', not {self.kind!r}")

    @property
    def label(self) -> str:
        """A short name: ``none``, ``static@1``, ``scattering-coherence@0.9``, …"""
        if self.kind == "static":
            return f"static@{self.exit_layer}"
        if self.kind == "scattering":
            return f"scattering-{self.statistic}@{self.threshold:.4g}"
        if self.kind in ("confidence", "ponder"):
            return f"{self.kind}@{self.threshold:.4g}"
        return "none"


@dataclass
class EarlyExitOutput:
    """``logits`` (B, T, V) of each token's exit, ``exit_layer`` (B, T) long (the block
    after which it stopped), ``flops`` (B, T) float64 forward FLOPs charged to it, and the
    mean cross-entropy ``loss`` when targets were given."""

    logits: torch.Tensor
    exit_layer: torch.Tensor
    flops: torch.Tensor
    loss: torch.Tensor | None = None


# -- the learned (PonderNet) halting heads -------------------------------------------------
def _check_ponder_args(beta: float | None = None, lambda_p: float | None = None) -> None:
    """``beta >= 0`` finite and ``lambda_p`` in the open interval (0, 1), else ValueError."""
    if beta is not None and (isinstance(beta, bool) or not isinstance(beta, (int, float))
                             or not math.isfinite(beta) or beta < 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    if lambda_p is not None and (isinstance(lambda_p, bool)
                                 or not isinstance(lambda_p, (int, float))
                                 or not (math.isfinite(lambda_p) and 0.0 < lambda_p < 1.0)):
        raise ValueError(f"lambda_p must be in (0, 1) (open interval), got {lambda_p!r}")


def halting_distribution(lambdas: torch.Tensor) -> torch.Tensor:
    """PonderNet's halting distribution over the blocks.

    Parameters
    ----------
    lambdas : torch.Tensor, shape (..., L - 1)
        ``lambda_n = P(halt at block n | not halted before)`` for the blocks ``n < L - 1``,
        in [0, 1].

    Returns
    -------
    torch.Tensor, shape (..., L)
        ``p_n = lambda_n Π_{m<n} (1 - lambda_m)`` for ``n < L - 1``, and the remaining mass
        ``p_{L-1} = Π_{m<L-1} (1 - lambda_m)`` on the last block (which always halts): the
        entries sum to 1.

    Examples
    --------
    >>> halting_distribution(torch.tensor([0.5, 0.25])).tolist()
    [0.5, 0.125, 0.375]
    """
    ones = lambdas.new_ones((*lambdas.shape[:-1], 1))
    survive = torch.cumprod(torch.cat([ones, 1 - lambdas], -1), -1)  # Π_{m<n} (1 - lambda_m)
    return survive * torch.cat([lambdas, ones], -1)


def _log_halting_distribution(logits: torch.Tensor) -> torch.Tensor:
    """``log p`` (..., L) of :func:`halting_distribution` from ``z_n`` (..., L - 1),
    ``lambda_n = sigmoid(z_n)``, in log space (no underflow when a head saturates)."""
    log_halt, log_go = F.logsigmoid(logits), F.logsigmoid(-logits)
    zeros = logits.new_zeros((*logits.shape[:-1], 1))
    log_survive = torch.cumsum(torch.cat([zeros, log_go], -1), -1)
    return log_survive + torch.cat([log_halt, zeros], -1)


def geometric_prior(n_layers: int, lambda_p: float, *, dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """PonderNet's prior: the geometric distribution of parameter ``lambda_p`` on the blocks.

    Parameters
    ----------
    n_layers : int
        L >= 1.
    lambda_p : float in (0, 1), open
        The prior's constant halting probability per block (mean ``1/lambda_p`` blocks when
        untruncated).

    Returns
    -------
    torch.Tensor, shape (L,)
        ``q_n = lambda_p (1 - lambda_p)^n`` for ``n < L - 1`` and the remaining mass
        ``(1 - lambda_p)^{L-1}`` on the last block — :func:`halting_distribution` of the
        constant ``lambda_p``, so both distributions of the KL term are normalised.

    Raises
    ------
    ValueError
        ``lambda_p`` outside (0, 1), or ``n_layers < 1``.
    """
    _check_ponder_args(lambda_p=lambda_p)
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    lam = torch.full((n_layers - 1,), float(lambda_p), dtype=dtype, device=device)
    return halting_distribution(lam)


def ponder_loss(logits: torch.Tensor, ce: torch.Tensor, *, beta: float, lambda_p: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The PonderNet loss of halting heads over per-exit cross-entropies (mean over tokens).

    Parameters
    ----------
    logits : torch.Tensor, shape (N, L - 1)
        The heads' pre-sigmoid outputs ``z_n`` (``lambda_n = sigmoid(z_n)``) for blocks
        ``n < L - 1``.
    ce : torch.Tensor, shape (N, L)
        Cross-entropy of each token's exit after each block (constants: the model is frozen).
    beta : float >= 0
        Weight of the KL term.
    lambda_p : float in (0, 1), open
        The geometric prior's parameter (:func:`geometric_prior`).

    Returns
    -------
    loss, reconstruction, kl : torch.Tensor
        Scalars: ``reconstruction = mean_tokens Σ_n p_n CE_n``, ``kl = mean_tokens
        KL(p || q) = Σ_n p_n (log p_n - log q_n)`` and ``loss = reconstruction + beta·kl``.

    Raises
    ------
    ValueError
        ``beta < 0``, ``lambda_p`` outside (0, 1), or shapes that do not match.
    """
    _check_ponder_args(beta, lambda_p)
    if logits.dim() != 2 or ce.dim() != 2 or ce.shape != (logits.shape[0], logits.shape[1] + 1):
        raise ValueError(f"logits must be (N, L - 1) and ce (N, L); got {tuple(logits.shape)} "
                         f"and {tuple(ce.shape)}")
    log_p = _log_halting_distribution(logits)
    p = log_p.exp()
    log_q = geometric_prior(ce.shape[1], lambda_p, dtype=log_p.dtype, device=log_p.device).log()
    reconstruction = (p * ce.to(p.dtype)).sum(-1).mean()
    kl = (p * (log_p - log_q)).sum(-1).mean()
    return reconstruction + beta * kl, reconstruction, kl


class PonderHalting(nn.Module):
    """Learned halting heads, one per block ``n < L - 1`` (the last block always halts).

    ``lambda_n(x) = sigmoid(w_n · LN(x) + b_n)`` with ``LN`` an affine-free layer norm of the
    block's output ``x`` (d_model) — the residual stream's scale differs from block to block.
    Initialised with ``w_n = 0`` and ``b_n = logit(lambda_p)``, so that before training the
    halting distribution *is* the geometric prior (KL = 0) and no token reaches a threshold
    above ``lambda_p``.

    Parameters
    ----------
    n_layers : int
        L >= 2, the model's number of blocks.
    d_model : int
    lambda_p : float in (0, 1), open
        The initial (prior) halting probability.

    Raises
    ------
    ValueError
        ``lambda_p`` outside (0, 1), ``n_layers < 2`` or ``d_model < 1``.
    """

    def __init__(self, n_layers: int, d_model: int, *, lambda_p: float = 0.2) -> None:
        super().__init__()
        _check_ponder_args(lambda_p=lambda_p)
        for name, v, lo in (("n_layers", n_layers, 2), ("d_model", d_model, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        self.n_layers, self.d_model = n_layers, d_model
        self.heads = nn.ModuleList(nn.Linear(d_model, 1) for _ in range(n_layers - 1))
        with torch.no_grad():
            for h in self.heads:
                h.weight.zero_()
                h.bias.fill_(math.log(lambda_p / (1 - lambda_p)))

    @property
    def flops_per_block(self) -> int:
        """FLOPs of one halting decision per token: ``2·d`` for the product, ``5·d`` for the
        norm (mean, centring, squares, their sum, scaling) and 4 for the sigmoid."""
        return 7 * self.d_model + 4

    def logit(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """``z_n`` (...) of block ``layer`` on its output ``x`` (..., d_model)."""
        h = self.heads[layer]
        x = F.layer_norm(x.to(h.weight.dtype), (self.d_model,))
        return h(x).squeeze(-1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Logits ``z`` (..., L - 1) from the stacked block outputs ``states``
        (L - 1, ..., d_model); ``lambda = sigmoid(z)``."""
        return torch.stack([self.logit(n, states[n]) for n in range(self.n_layers - 1)], -1)


class EarlyExit(nn.Module):
    """Early exit around a trained model (its parameters are shared, not copied).

    Parameters
    ----------
    model : LanguageModel or TransformerBaseline
    halting : PonderHalting, optional
        The trained halting heads rule ``ponder`` reads (:func:`train_ponder_halting`).

    Forward: ``(input_ids (B, T), rule, targets=None) -> EarlyExitOutput``. Cost: the
    model's forward plus, for ``confidence``, one head per block (all tokens are computed;
    see the module docstring for what the FLOPs count).
    """

    def __init__(self, model: nn.Module, halting: PonderHalting | None = None) -> None:
        super().__init__()
        from bkmodel.baseline import TransformerBaseline
        from bkmodel.model import LanguageModel

        if isinstance(model, TransformerBaseline):
            self.arch = "transformer"
        elif isinstance(model, LanguageModel):
            self.arch = "bk"
        else:
            raise TypeError(f"model must be a LanguageModel or TransformerBaseline, got "
                            f"{type(model).__name__}")
        self.model = model
        self.n_layers = len(model.blocks)
        if halting is not None:
            if not isinstance(halting, PonderHalting):
                raise TypeError(f"halting must be a PonderHalting, got {type(halting).__name__}")
            if (halting.n_layers, halting.d_model) != (self.n_layers, model.config.d_model):
                raise ValueError(f"halting heads for n_layers={halting.n_layers}, d_model="
                                 f"{halting.d_model} do not fit the model's n_layers="
                                 f"{self.n_layers}, d_model={model.config.d_model}")
        self.halting = halting

    # -- the model, one block at a time ----------------------------------------------------
    def _embed(self, ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        m = self.model
        if self.arch == "bk":  # as LanguageModel._hidden
            m._check_ids(ids)
            m.guard.begin_forward()
            return m.drop(m.wte(ids.long())), []
        from bkmodel import lm_base

        lm_base.check_ids(ids, m.config.vocab_size, None, "input_ids")
        x = m.drop(m.embed(ids.long()))  # (B, T, d)
        return x, m._rope_tables(ids.shape[1], x.device, x.dtype)

    def _block(self, i: int, x: torch.Tensor, ctx: Any
               ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Block i on x -> (x, (g_re, g_im) of its BK layer or None)."""
        block = self.model.blocks[i]
        if self.arch == "transformer":
            return block(x, *ctx), None
        seen: list = []
        hook = block.bk.register_forward_hook(lambda mod, inp, out: seen.append(out[1:3]))
        try:
            x = block(x, ctx)  # ctx: the MoE statistics list
        finally:
            hook.remove()
        return x, seen[0]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.arch == "bk":
            return m.lm_head(m.ln_f(x))
        return m.logits(x)

    # -- FLOPs -----------------------------------------------------------------------------
    def flop_costs(self, T: int) -> dict[str, Any]:
        """Per-token forward FLOPs for windows of T tokens: ``full`` and ``state`` (lists,
        one per block), ``head``, ``chains`` (S per block, ResNet-BK), ``halting`` (one
        :class:`PonderHalting` decision, :attr:`PonderHalting.flops_per_block`) and ``model``
        (the whole forward, = what rule ``none`` is charged)."""
        rows = model_flops(self.model, T)
        full = [0.0] * self.n_layers
        state = [0.0] * self.n_layers
        head = 0.0
        chains = 0
        for r in rows:
            if r.name == "lm_head":
                head += r.total / T
                continue
            i, part = r.name.split(".", 1)
            i = int(i.removeprefix("block"))
            full[i] += r.total / T
            if self.arch == "bk" and part in _BK_STATE_ROWS:
                state[i] += r.total / T
            if self.arch == "transformer" and part == "attn.qkv":
                state[i] += r.total / T * 2 / 3  # the key and value projections
        if self.arch == "bk":
            chains = self.model.config.n_channels * getattr(self.model.config, "n_energies", 1)
        return {"full": full, "state": state, "head": head, "chains": chains,
                "halting": 7 * self.model.config.d_model + 4, "model": sum(full) + head}

    def _charge(self, exit_layer: torch.Tensor, rule: HaltingRule, T: int) -> torch.Tensor:
        c = self.flop_costs(T)
        L = self.n_layers
        full = np.concatenate([[0.0], np.cumsum(c["full"])])  # full[e + 1] = blocks 0..e
        state = np.concatenate([np.cumsum(c["state"][::-1])[::-1], [0.0]])  # blocks e+1..
        e = np.arange(L)
        per_exit = full[e + 1] + state[e + 1]
        if rule.kind == "confidence":
            per_exit = per_exit + (e + 1) * c["head"]
        else:
            per_exit = per_exit + c["head"]
        decisions = np.minimum(e, L - 2) + 1  # blocks at which a halting decision is made
        if rule.kind == "scattering":
            per_exit = per_exit + decisions * _STAT_FLOPS[rule.statistic] * c["chains"]
        if rule.kind == "ponder":
            per_exit = per_exit + decisions * c["halting"]
        table = torch.tensor(per_exit, dtype=torch.float64, device=exit_layer.device)
        return table[exit_layer]

    # -- forward ---------------------------------------------------------------------------
    def _score(self, rule: HaltingRule, x: torch.Tensor,
               g: tuple[torch.Tensor, torch.Tensor] | None, layer: int | None = None
               ) -> torch.Tensor:
        """The halting statistic (B, T) after block ``layer`` (``ponder`` needs it)."""
        if rule.kind == "ponder":
            if self.halting is None:
                raise ValueError("rule 'ponder' needs trained halting heads: "
                                 "EarlyExit(model, halting=train_ponder_halting(...)[0])")
            if layer is None:
                raise ValueError("rule 'ponder' needs the block index (layer)")
            # float64 sigmoid: lambda reaches 1 - 1e-9 only for a logit above 20.7
            return torch.sigmoid(self.halting.logit(layer, x).double())
        if rule.kind == "confidence":
            return F.softmax(self._logits(x).float(), dim=-1).amax(-1)
        if g is None:
            raise ValueError("the scattering rule needs the BK layer's g: it applies to "
                             "ResNet-BK only (the Transformer has no Green's function)")
        g_re, g_im = g[0].float(), g[1].float()  # (B, T, S)
        s_re, s_im = g_re.sum(-1), g_im.sum(-1)
        if rule.statistic == "phase":
            return torch.atan2(s_im, s_re) / math.pi
        return torch.hypot(s_re, s_im) / torch.hypot(g_re, g_im).sum(-1).clamp_min(1e-30)

    def forward(self, input_ids: torch.Tensor, rule: HaltingRule,
                targets: torch.Tensor | None = None) -> EarlyExitOutput:
        if not isinstance(rule, HaltingRule):
            raise TypeError(f"rule must be a HaltingRule, got {type(rule).__name__}")
        L = self.n_layers
        if rule.kind == "static" and rule.exit_layer >= L:
            raise ValueError(f"exit_layer must be < n_layers={L}, got {rule.exit_layer}")
        if rule.kind == "ponder" and self.halting is None:
            raise ValueError("rule 'ponder' needs trained halting heads: "
                             "EarlyExit(model, halting=train_ponder_halting(...)[0])")
        x, ctx = self._embed(input_ids)
        B, T = input_ids.shape
        halted = torch.zeros(B, T, dtype=torch.bool, device=x.device)
        exit_layer = torch.full((B, T), L - 1, dtype=torch.long, device=x.device)
        for i in range(L):
            x_new, g = self._block(i, x, ctx)
            x = torch.where(halted[..., None], x, x_new)  # halted tokens: state copied up
            if i == L - 1 or rule.kind == "none":
                continue
            if rule.kind == "static":
                now = torch.full_like(halted, i == rule.exit_layer)
            else:
                now = self._score(rule, x, g, i) >= rule.threshold
            now = now & ~halted
            exit_layer[now] = i
            halted |= now
        logits = self._logits(x)  # (B, T, V): a halted token's x is its exit's
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                   targets.reshape(-1).long(), ignore_index=-100)
        return EarlyExitOutput(logits, exit_layer, self._charge(exit_layer, rule, T), loss)

    @torch.no_grad()
    def unrolled(self, input_ids: torch.Tensor, targets: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every block on every token (no halting): the block outputs and per-exit losses.

        Parameters
        ----------
        input_ids, targets : torch.Tensor, shape (B, T)

        Returns
        -------
        states : torch.Tensor, shape (L - 1, B, T, d_model)
            The residual stream after blocks ``0..L-2`` (what the halting heads read).
        ce : torch.Tensor, shape (B, T, L)
            Cross-entropy (float32) of the exit after each block, ``head(LN_f(x_n))``.
        """
        x, ctx = self._embed(input_ids)
        states, ce = [], []
        for i in range(self.n_layers):
            x, _ = self._block(i, x, ctx)
            if i < self.n_layers - 1:
                states.append(x)
            logits = self._logits(x).float()
            ce.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                      targets.reshape(-1).long(), reduction="none"
                                      ).view(targets.shape))
        return torch.stack(states), torch.stack(ce, -1)


@torch.no_grad()
def evaluate_early_exit(model: nn.Module, tokens: np.ndarray, rule: HaltingRule, *,
                        seq_len: int, max_tokens: int | None = None, batch_size: int = 16,
                        halting: PonderHalting | None = None) -> dict[str, Any]:
    """Perplexity and mean FLOPs per token of ``rule`` on a held-out token stream.

    Windows as :func:`bkmodel.evaluate.evaluate_stream` (:func:`bkmodel.data.eval_windows`:
    consecutive, ``max_tokens`` spread evenly). Returns ``loss``, ``ppl``, ``flops_per_token``
    (mean over the predicted tokens), ``flops_fraction`` (of the full model's),
    ``exit_fraction`` (per block, the share of tokens exiting there) and ``tokens``.
    Runs in eval mode (restored afterwards). ``halting``: the trained heads of rule
    ``ponder``.
    """
    from bkmodel.data import batch_from_stream, eval_windows

    ee = EarlyExit(model, halting)
    was = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        starts = eval_windows(len(tokens), seq_len, max_tokens)
        nll = flops = 0.0
        n = 0
        hist = torch.zeros(ee.n_layers, dtype=torch.float64)
        for i in range(0, len(starts), batch_size):
            rows = torch.from_numpy(batch_from_stream(tokens, starts[i: i + batch_size],
                                                      seq_len)).to(device)
            out = ee(rows[:, :-1], rule, rows[:, 1:])
            k = rows[:, 1:].numel()
            nll += float(out.loss) * k
            flops += float(out.flops.sum())
            hist += torch.bincount(out.exit_layer.reshape(-1).cpu(),
                                   minlength=ee.n_layers).double()
            n += k
    finally:
        model.train(was)
    full = ee.flop_costs(seq_len)["model"]
    return {"rule": rule.label, "kind": rule.kind, "threshold": rule.threshold,
            "statistic": rule.statistic if rule.kind == "scattering" else None,
            "exit_layer": rule.exit_layer, "loss": nll / n, "ppl": math.exp(nll / n),
            "flops_per_token": flops / n, "flops_fraction": flops / n / full,
            "exit_fraction": (hist / n).tolist(), "tokens": n}


def train_ponder_halting(model: nn.Module, tokens: np.ndarray, *, seq_len: int,
                         steps: int = 200, windows: int = 128, beta: float = 0.01,
                         lambda_p: float = 0.2, lr: float = 0.05, seed: int = 0,
                         batch_size: int = 16) -> tuple[PonderHalting, dict[str, Any]]:
    """Train PonderNet halting heads on a frozen trained model.

    The model's weights are **frozen** (not touched; run in eval mode): only the
    :class:`PonderHalting` heads learn, so the ``ponder`` rule is, like the other rules, a
    halting policy on the same trained model. Because nothing upstream of the heads changes,
    the unrolled forward (:meth:`EarlyExit.unrolled`: every block on every token, the
    PonderNet training graph) is computed once on ``windows`` training windows of
    ``seq_len + 1`` tokens (random starts, ``seed``), and ``steps`` full-batch Adam steps
    (learning rate ``lr``) minimise :func:`ponder_loss` on the cached block outputs and
    per-exit cross-entropies — the same updates as recomputing that forward every step.

    Parameters
    ----------
    model : LanguageModel or TransformerBaseline
        Trained; frozen here.
    tokens : numpy.ndarray
        A *training* token stream (not the evaluation split).
    seq_len : int
        Window length (the model's).
    steps : int >= 0
        Adam steps (0: the heads at their initialisation, the prior).
    windows : int >= 1
        Training windows (``windows·seq_len`` tokens).
    beta : float >= 0
        KL weight (PonderNet's ``beta``; 0.01 in the paper's experiments).
    lambda_p : float in (0, 1), open
        The geometric prior's parameter, also the heads' initial ``lambda``.
    lr : float > 0
    seed : int
    batch_size : int
        Windows per forward while caching.

    Returns
    -------
    halting : PonderHalting
        The trained heads (float32, on the model's device).
    info : dict
        ``loss``, ``reconstruction``, ``kl`` and ``expected_exit`` (``mean_tokens Σ_n n·p_n``,
        0-based) at the start and the end (``*_init``, ``*_final``), the settings, the number
        of ``tokens`` and the per-exit mean cross-entropy ``exit_ce``.

    Raises
    ------
    ValueError
        ``beta < 0``, ``lambda_p`` outside (0, 1), ``steps < 0``, ``windows < 1``,
        ``lr <= 0``, or a stream shorter than one window.
    """
    from bkmodel.data import batch_from_stream

    _check_ponder_args(beta, lambda_p)
    for name, v, lo in (("steps", steps, 0), ("windows", windows, 1),
                        ("batch_size", batch_size, 1), ("seq_len", seq_len, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr)
                                                                         and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    n_starts = len(tokens) - seq_len
    if n_starts < 1:
        raise ValueError(f"the token stream ({len(tokens)} tokens) is shorter than one window "
                         f"of seq_len + 1 = {seq_len + 1}")
    ee = EarlyExit(model)
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.choice(n_starts, size=windows, replace=windows > n_starts))
    was = model.training
    model.eval()
    try:
        states, ce = [], []
        for i in range(0, windows, batch_size):
            rows = torch.from_numpy(batch_from_stream(tokens, starts[i: i + batch_size],
                                                      seq_len)).to(device)
            s, c = ee.unrolled(rows[:, :-1], rows[:, 1:])
            states.append(s.float().flatten(1, 2))  # (L - 1, B·T, d)
            ce.append(c.flatten(0, 1))  # (B·T, L)
    finally:
        model.train(was)
    X, CE = torch.cat(states, 1), torch.cat(ce, 0)
    torch.manual_seed(seed)
    halting = PonderHalting(ee.n_layers, model.config.d_model, lambda_p=lambda_p).to(device)
    opt = torch.optim.Adam(halting.parameters(), lr=lr)
    pos = torch.arange(ee.n_layers, dtype=torch.float64, device=device)

    def measure() -> dict[str, float]:
        with torch.no_grad():
            z = halting(X)
            loss, rec, kl = ponder_loss(z, CE, beta=beta, lambda_p=lambda_p)
            p = _log_halting_distribution(z.double()).exp()
        return {"loss": float(loss), "reconstruction": float(rec), "kl": float(kl),
                "expected_exit": float((p * pos).sum(-1).mean())}

    init = measure()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss, _, _ = ponder_loss(halting(X), CE, beta=beta, lambda_p=lambda_p)
        loss.backward()
        opt.step()
    final = measure()
    halting.eval().requires_grad_(False)
    info: dict[str, Any] = {"steps": steps, "windows": windows, "tokens": int(CE.shape[0]),
                            "beta": beta, "lambda_p": lambda_p, "lr": lr, "seed": seed,
                            "model_weights": "frozen",
                            "exit_ce": CE.mean(0).tolist()}
    info |= {f"{k}_init": v for k, v in init.items()}
    info |= {f"{k}_final": v for k, v in final.items()}
    return halting, info
