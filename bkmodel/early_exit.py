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
  every block the token passes. A PonderNet halting head would need the exits trained jointly
  with the model (a new loss in the training loop); it is not implemented here.

A halting ``threshold`` outside the open interval (0, 1) is a ``ValueError`` naming it; a
threshold close to 1 halts no token early and reproduces the model exactly (tested).

FLOPs (:meth:`EarlyExit.flop_costs`, from :mod:`bkmodel.flops`' per-layer forward counts for
the window length T, per token). A token exiting at block ``e`` is charged the full blocks
``0..e``, the *state* part of the deeper blocks (ResNet-BK: the input projection, convolution
and scan that feed the chains; Transformer: the key and value projections), one head
evaluation for ``none``/``static``/``scattering`` and ``e + 1`` for ``confidence``, and for
``scattering`` about ``6·S`` (coherence) or ``2·S`` (phase) elementwise FLOPs per evaluated
block. These are the FLOPs an implementation that skips the halted tokens' other work would
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
           "evaluate_early_exit"]

RULES = ("none", "static", "scattering", "confidence")
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
    kind : {"none", "static", "scattering", "confidence"}
    threshold : float in (0, 1), open
        ``scattering`` and ``confidence``: halt when the statistic is ``>= threshold``.
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
        if self.kind in ("scattering", "confidence"):
            t = self.threshold
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                raise ValueError(f"threshold must be a number in (0, 1) for kind="
                                 f"{self.kind!r}, got {t!r}")
            if not (math.isfinite(t) and 0.0 < t < 1.0):
                raise ValueError(f"threshold must be in (0, 1) (open interval), got {t!r}")
        elif self.threshold is not None:
            raise ValueError(f"threshold is only used by scattering/confidence, not "
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
        if self.kind == "confidence":
            return f"confidence@{self.threshold:.4g}"
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


class EarlyExit(nn.Module):
    """Early exit around a trained model (its parameters are shared, not copied).

    Parameters
    ----------
    model : LanguageModel or TransformerBaseline

    Forward: ``(input_ids (B, T), rule, targets=None) -> EarlyExitOutput``. Cost: the
    model's forward plus, for ``confidence``, one head per block (all tokens are computed;
    see the module docstring for what the FLOPs count).
    """

    def __init__(self, model: nn.Module) -> None:
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
        one per block), ``head``, ``chains`` (S per block, ResNet-BK) and ``model`` (the
        whole forward, = what rule ``none`` is charged)."""
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
                "model": sum(full) + head}

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
        if rule.kind == "scattering":
            per_exit = per_exit + (np.minimum(e, L - 2) + 1) * _STAT_FLOPS[rule.statistic] \
                * c["chains"]
        table = torch.tensor(per_exit, dtype=torch.float64, device=exit_layer.device)
        return table[exit_layer]

    # -- forward ---------------------------------------------------------------------------
    def _score(self, rule: HaltingRule, x: torch.Tensor,
               g: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """The halting statistic (B, T) after a block."""
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
                now = self._score(rule, x, g) >= rule.threshold
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
def evaluate_early_exit(model: nn.Module, tokens: np.ndarray, rule: HaltingRule, *,
                        seq_len: int, max_tokens: int | None = None, batch_size: int = 16
                        ) -> dict[str, Any]:
    """Perplexity and mean FLOPs per token of ``rule`` on a held-out token stream.

    Windows as :func:`bkmodel.evaluate.evaluate_stream` (:func:`bkmodel.data.eval_windows`:
    consecutive, ``max_tokens`` spread evenly). Returns ``loss``, ``ppl``, ``flops_per_token``
    (mean over the predicted tokens), ``flops_fraction`` (of the full model's),
    ``exit_fraction`` (per block, the share of tokens exiting there) and ``tokens``.
    Runs in eval mode (restored afterwards).
    """
    from bkmodel.data import batch_from_stream, eval_windows

    ee = EarlyExit(model)
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
