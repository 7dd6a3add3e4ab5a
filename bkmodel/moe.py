"""Mixture-of-experts feed-forward with a learned top-k gate or the scattering router.

Two gates choose, per token, ``top_k`` of ``num_experts`` expert MLPs:

* ``learned``: softmax gate ``p = softmax(W_g x)``; the token goes to its top-k experts with
  weights ``p_e`` (top-1, as in Switch) or ``p_e / sum_topk p`` (top-k, k > 1). The
  load-balance loss is Switch's ``E * sum_e f_e P_e`` (f_e: fraction of token slots sent to
  expert e, P_e: mean gate probability), which equals 1 for a uniform gate and load.
* ``scattering``: parameter-free. The phase ``phi = arg(sum_c g_c) in (0, pi)`` of the
  block's causal Green's function (Im g > 0, so the sum lies in the upper half-plane) is
  binned into ``num_experts`` equal arcs of (0, pi); a token goes to the ``top_k`` experts
  whose arc centres ``(e + 1/2) pi / E`` are nearest to phi, with equal weights 1/k. There is
  nothing to train, so its auxiliary loss is 0; its load statistics are still reported.
  The phase used is arg g^L (the edge Green's function), not the scattering phase
  arg det_2 — it is what is available causally and per token at no extra cost.

Dispatch (``dispatch``): ``sparse`` loops over experts, gathering the tokens each one
serves, so the cost is O(tokens · top_k · expert) but every gather size is read on the host
(one synchronisation per expert); ``dense`` runs every expert on every token and sums the
outputs weighted by the gate (zero for experts not chosen), O(tokens · num_experts · expert)
with no synchronisation and the same value up to rounding; ``grouped`` sorts the token slots
by expert and runs each expert's two matmuls as one grouped matmul over the sorted rows
(``torch._grouped_mm`` with device-side group offsets): O(tokens · top_k · expert) like
``sparse`` and, like ``dense``, no host synchronisation (CUDA-graph safe); it needs
``d_in``, ``hidden`` and ``d_out`` divisible by 8 (16-byte rows in bf16). ``auto`` is dense on
CUDA and sparse elsewhere. Either way: no capacity limit, no dropped tokens, and the result for a
token does not depend on the other tokens of the batch (generation step by step equals the
full forward).

Data parallelism (``balance_records`` and :func:`global_balance_correction`): ``f_e`` and
``P_e`` are means over the tokens a process sees, so under DDP each rank's load-balance loss
would be that of its shard, not of the global batch. The trainer sets ``balance_records`` to a
list on every MoE; each training forward then records its detached slot fractions and its
(differentiable) mean gate probabilities, and after the forward (when every rank is past it:
no collective runs inside the forward, where a ``GuardError`` on one rank would leave the
others waiting) :func:`global_balance_correction` all-reduces the fractions and returns the
term that turns each rank's loss into ``E * sum_e f_e^global P_e^rank``. Its mean over ranks is
Switch's loss of the global batch, and DDP's gradient average is the global batch's gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MLP", "MoE", "global_balance_correction", "scattering_route"]


class MLP(nn.Module):
    """Two-layer GELU feed-forward ``d_in -> hidden -> d_out``."""

    def __init__(self, d_in: int, hidden: int, d_out: int, *, bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.fc = nn.Linear(d_in, hidden, bias=bias)
        self.proj = nn.Linear(hidden, d_out, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


def scattering_route(phase: torch.Tensor, num_experts: int, top_k: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Expert choice from a phase in (0, pi): the ``top_k`` nearest arc centres.

    Parameters
    ----------
    phase : (M,) tensor, values in [0, pi]
    num_experts, top_k : int

    Returns
    -------
    (index, weight) : (M, top_k) long and (M, top_k) float (all weights 1/top_k).
    """
    centres = (torch.arange(num_experts, device=phase.device, dtype=phase.dtype) + 0.5) * (
        math.pi / num_experts
    )
    dist = (phase.unsqueeze(-1) - centres).abs()  # (M, E)
    index = dist.topk(top_k, dim=-1, largest=False).indices  # (M, k)
    weight = torch.full(index.shape, 1.0 / top_k, dtype=phase.dtype, device=phase.device)
    return index, weight


class MoE(nn.Module):
    """Top-k mixture of ``num_experts`` MLPs ``d_in -> hidden -> d_out``.

    ``forward(x, phase=None)`` returns ``(y, stats)`` with ``stats`` holding ``aux_loss``
    (scalar tensor, differentiable for the learned gate) and ``load`` ((E,) fraction of
    token slots per expert, detached).
    """

    def __init__(self, d_in: int, hidden: int, d_out: int, *, num_experts: int, top_k: int,
                 router: str = "learned", bias: bool = True, dropout: float = 0.0,
                 dispatch: str = "auto") -> None:
        super().__init__()
        if top_k > num_experts:
            raise ValueError(f"top_k must be <= num_experts, got {top_k} > {num_experts}")
        if router not in ("learned", "scattering"):
            raise ValueError(f"router must be 'learned' or 'scattering', got {router!r}")
        if dispatch not in ("auto", "sparse", "dense", "grouped"):
            raise ValueError(f"dispatch must be 'auto', 'sparse', 'dense' or 'grouped', got "
                             f"{dispatch!r}")
        if dispatch == "grouped" and any(n % 8 for n in (d_in, hidden, d_out)):
            raise ValueError(f"dispatch='grouped' needs d_in, hidden and d_out divisible by 8 "
                             f"(16-byte rows), got {d_in}, {hidden}, {d_out}")
        self.num_experts, self.top_k, self.router = num_experts, top_k, router
        self.dispatch = dispatch
        self.experts = nn.ModuleList(
            MLP(d_in, hidden, d_out, bias=bias, dropout=dropout) for _ in range(num_experts)
        )
        self.gate = nn.Linear(d_in, num_experts, bias=False) if router == "learned" else None
        self.d_out = d_out
        # set to a list by a data-parallel trainer: one (slot fractions (E,) detached, mean gate
        # probabilities (E,) or None) per training forward (global_balance_correction)
        self.balance_records: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None

    def route(self, x: torch.Tensor, phase: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(index (M, k), weight (M, k), aux_loss) for flattened tokens x (M, d_in)."""
        E, k = self.num_experts, self.top_k
        if self.router == "scattering":
            if phase is None:
                raise ValueError("the scattering router needs the phase of g (phase=None)")
            index, weight = scattering_route(phase.reshape(-1).to(x.dtype), E, k)
            self._record(_slot_fractions(index, E), None)  # aux 0: nothing to correct
            return index, weight, x.new_zeros(())
        probs = F.softmax(self.gate(x).float(), dim=-1)  # (M, E)
        top_p, index = probs.topk(k, dim=-1)  # (M, k)
        weight = top_p if k == 1 else top_p / top_p.sum(-1, keepdim=True)
        frac = _slot_fractions(index, E)  # (E,); F.one_hot would synchronise on CUDA
        mean_p = probs.mean(0)  # (E,)
        aux = E * (frac * mean_p).sum()
        self._record(frac, mean_p)
        return index, weight.to(x.dtype), aux

    def _record(self, frac: torch.Tensor, mean_p: torch.Tensor | None) -> None:
        if self.balance_records is not None and self.training:
            self.balance_records.append((frac.detach(), mean_p))

    def forward(self, x: torch.Tensor, phase: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        shape = x.shape
        xf = x.reshape(-1, shape[-1])  # (M, d_in)
        if self.num_experts == 1:
            y = self.experts[0](xf)
            load = xf.new_ones(1)
            self._record(load, None)  # counted in the model's mean aux loss, no correction
            return y.reshape(*shape[:-1], self.d_out), {"aux_loss": xf.new_zeros(()),
                                                        "load": load}
        index, weight, aux = self.route(xf, phase)
        dense = self.dispatch == "dense" or (self.dispatch == "auto" and xf.is_cuda)
        if self.dispatch == "grouped":
            y = self._grouped(xf, index, weight)
        elif dense:
            experts = torch.arange(self.num_experts, device=index.device)
            # gate weight of expert e for each token: sum over its k slots choosing e
            w = ((index.unsqueeze(-1) == experts) * weight.unsqueeze(-1)).sum(1)  # (M, E)
            y = None
            for e, expert in enumerate(self.experts):
                term = w[:, e, None].to(xf.dtype) * expert(xf)
                y = term if y is None else y + term
        else:
            y = xf.new_zeros(xf.shape[0], self.d_out)
            for e, expert in enumerate(self.experts):
                tok, slot = torch.nonzero(index == e, as_tuple=True)
                if tok.numel() == 0:
                    continue
                y.index_add_(0, tok, weight[tok, slot, None] * expert(xf[tok]))
        load = _slot_fractions(index, self.num_experts).detach()
        return y.reshape(*shape[:-1], self.d_out), {"aux_loss": aux, "load": load}


    def _grouped(self, xf: torch.Tensor, index: torch.Tensor, weight: torch.Tensor
                 ) -> torch.Tensor:
        """Sort-by-expert dispatch: one grouped matmul per expert layer, no host sync."""
        M, k = index.shape
        E = self.num_experts
        flat = index.reshape(-1)  # (M k,) expert of each token slot
        order = torch.argsort(flat, stable=True)
        tok = order // k  # token of each sorted slot
        counts = (flat.unsqueeze(-1) == torch.arange(E, device=flat.device)).sum(0)
        offs = counts.cumsum(0).to(torch.int32)  # end row of each expert's group
        e_sorted = flat[order]
        dt = torch.get_autocast_dtype(xf.device.type) if torch.is_autocast_enabled(
            xf.device.type) else xf.dtype
        xs = xf[tok].to(dt)
        fc_w = torch.stack([e.fc.weight for e in self.experts]).transpose(1, 2).to(dt)
        pr_w = torch.stack([e.proj.weight for e in self.experts]).transpose(1, 2).to(dt)
        h = _grouped_mm(xs, fc_w, offs, e_sorted)
        if self.experts[0].fc.bias is not None:
            h = h + torch.stack([e.fc.bias for e in self.experts]).to(dt)[e_sorted]
        h = F.gelu(h)
        out = _grouped_mm(h.to(dt), pr_w, offs, e_sorted)
        if self.experts[0].proj.bias is not None:
            out = out + torch.stack([e.proj.bias for e in self.experts]).to(dt)[e_sorted]
        out = self.experts[0].drop(out)
        w = weight.reshape(-1)[order, None].to(out.dtype)
        y = xf.new_zeros(M, self.d_out, dtype=out.dtype)
        return y.index_add_(0, tok, out * w)


def _grouped_mm(a: torch.Tensor, b: torch.Tensor, offs: torch.Tensor, group: torch.Tensor
                ) -> torch.Tensor:
    """Rows of ``a`` (sorted by group) times their group's matrix ``b[e]`` (E, n, m).

    ``torch._grouped_mm`` for float32/bf16/fp16; other dtypes (float64, the tests'
    reference precision) by masked full products, O(E) times the work, also sync-free."""
    if a.dtype in (torch.float32, torch.bfloat16, torch.float16):
        return _ContiguousGrad.apply(torch._grouped_mm(a, b, offs=offs))
    out = a.new_zeros(a.shape[0], b.shape[-1])
    for e in range(b.shape[0]):
        out = out + (group == e).unsqueeze(-1).to(a.dtype) * (a @ b[e])
    return out


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous (torch._grouped_mm's
    backward rejects the zero-stride gradients that e.g. ``sum()`` produces)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad.contiguous()


def global_balance_correction(model: nn.Module,
                              mean_over_ranks: Callable[[torch.Tensor], torch.Tensor],
                              ) -> torch.Tensor | None:
    """The term that makes a rank's MoE load-balance loss the global batch's.

    Pops the records every :class:`MoE` of ``model`` with ``balance_records`` set wrote in
    the last forward. A model's aux loss is the mean over its ``L`` MoE calls of
    ``E * sum_e f_e P_e`` (:meth:`bkmodel.model.LanguageModel.forward`); with the fractions
    averaged over ranks, ``f^g = mean_r f^r`` (equal token counts per rank), the returned
    ``(1/L) sum_calls E * sum_e (f^g_e - f^r_e) P^r_e`` added to the aux loss gives
    ``(1/L) sum E * sum_e f^g_e P^r_e``, whose mean over ranks is the aux loss of the global
    batch (``P^g = mean_r P^r``) and whose gradients, averaged by DDP, are its gradients.
    Multiply by ``aux_loss_weight`` before adding it to the loss.

    Parameters
    ----------
    model : nn.Module
    mean_over_ranks : callable
        ``t -> mean of t over the ranks`` (an all-reduce; every rank must call this function
        at the same point, with the same number of records).

    Returns
    -------
    torch.Tensor or None
        Scalar (differentiable through ``P``); None when nothing was recorded or no call has
        a learned gate (no collective is run then).
    """
    records = []
    for m in model.modules():
        if isinstance(m, MoE) and m.balance_records:
            records.extend(m.balance_records)
            m.balance_records.clear()
    learned = [(f, p) for f, p in records if p is not None]
    if not learned:
        return None
    sizes = [f.numel() for f, _ in learned]
    f_local = torch.cat([f for f, _ in learned])  # (sum E,): one all-reduce for all calls
    f_global = mean_over_ranks(f_local)
    corr = f_local.new_zeros(())
    for (f, p), fg in zip(learned, f_global.split(sizes), strict=True):
        corr = corr + f.numel() * ((fg - f) * p).sum()
    return corr / len(records)


def _slot_fractions(index: torch.Tensor, num_experts: int) -> torch.Tensor:
    """(E,) float: the fraction of the token slots in ``index`` (M, k) sent to each expert
    (computed by comparison, without a host synchronisation)."""
    experts = torch.arange(num_experts, device=index.device)
    return (index.reshape(-1, 1) == experts).float().mean(0)
