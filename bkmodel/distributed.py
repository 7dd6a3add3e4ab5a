"""Process-level state of a training run: the DDP world (:class:`Dist`) and the RNGs.

Under ``torchrun`` (``WORLD_SIZE > 1``) :class:`Dist` joins the process group (NCCL on CUDA,
gloo on CPU) and gives the loop the few collectives it needs; in a single process they are
no-ops. :func:`rng_state` / :func:`set_rng_state` capture and restore every RNG a step may draw
from (torch CPU and CUDA, NumPy's global RNG, Python's ``random``) as tensors and lists that a
``weights_only`` checkpoint can hold, so that a resumed run continues the same random streams.
:func:`may_leave_parameters_unused` decides DDP's ``find_unused_parameters`` from the model.

FSDP2 (``TrainConfig.parallel="fsdp"``, torch's ``fully_shard``): :func:`shard_model` shards
every block and then the root (embeddings, final norm, head); parameters and AdamW moments
become ``DTensor`` shards. :func:`full_state` gathers a state dict (model or optimizer) into
the plain tensors a one-process run has (a collective: every rank calls it, in the same
order), so checkpoints stay full and load on one process; :func:`load_full_model_state` and
:func:`load_full_optimizer_state` scatter such a full state back into the shards.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["Dist", "full_state", "load_full_model_state", "load_full_optimizer_state",
           "may_leave_parameters_unused", "params_finite", "rng_state", "set_rng_state",
           "shard_model"]


class Dist:
    """World size, rank and the collectives the loop needs (no-ops in a single process).

    ``device_pref`` is ``"auto"``, ``"cpu"``, ``"cuda"`` or a device string; under DDP on CUDA
    each rank takes ``cuda:$LOCAL_RANK``. The process group is destroyed by :meth:`close` only
    if this object created it.
    """

    def __init__(self, device_pref: str) -> None:
        import torch.distributed as dist

        self.dist = dist
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.owns_group = False
        if world > 1 and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and device_pref != "cpu" else "gloo"
            dist.init_process_group(backend=backend)
            self.owns_group = True
        self.enabled = dist.is_available() and dist.is_initialized()
        self.world = dist.get_world_size() if self.enabled else 1
        self.rank = dist.get_rank() if self.enabled else 0
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device_pref == "auto":
            device_pref = "cuda" if torch.cuda.is_available() else "cpu"
        if device_pref == "cuda" and self.enabled:
            device_pref = f"cuda:{local}"
            torch.cuda.set_device(local)
        self.device = torch.device(device_pref)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the ranks."""
        if not self.enabled:
            return value
        value = value.detach().clone()
        self.dist.all_reduce(value)
        return value / self.world

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on one."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self.dist.all_reduce(t)
        return bool(t.item() > 0)

    def any_each(self, flags: Sequence[bool]) -> list[bool]:
        """Each flag true on every rank if it is true on one (one all-reduce for all)."""
        if not self.enabled:
            return [bool(f) for f in flags]
        t = torch.tensor([1.0 if f else 0.0 for f in flags], device=self.device)
        self.dist.all_reduce(t)
        return [bool(v > 0) for v in t.tolist()]

    def barrier(self) -> None:
        if self.enabled:
            self.dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            self.dist.destroy_process_group()


def may_leave_parameters_unused(model: torch.nn.Module) -> bool:
    """True when a forward pass of ``model`` may leave some trainable parameter without a
    gradient: DDP's ``find_unused_parameters`` (which costs a graph traversal per step, and
    warns on every rank when nothing was unused).

    That happens in a mixture of experts that routes each token to ``top_k < num_experts``
    experts (:class:`bkmodel.moe.MoE`): an expert no token of the batch chose gets no
    gradient. Every other layer of both architectures uses all its parameters in each forward.
    """
    from bkmodel.moe import MoE

    return any(
        isinstance(m, MoE) and m.top_k < m.num_experts
        and any(p.requires_grad for p in m.experts.parameters())
        for m in model.modules()
    )


def params_finite(model: torch.nn.Module) -> bool:
    """True if every parameter of ``model`` held by this process is finite (for an FSDP shard,
    the local part only: combine the ranks' answers with :meth:`Dist.any`)."""
    for p in model.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p
        if not bool(torch.isfinite(local).all()):
            return False
    return True


def shard_model(model: torch.nn.Module) -> torch.nn.Module:
    """Shard ``model`` in place with FSDP2 (``fully_shard``): each element of every
    ``nn.ModuleList`` attribute of the root (the blocks), then the root.

    Needs an initialised process group; returns ``model`` (its class becomes FSDP's
    subclass, its parameters ``DTensor`` shards along dim 0).
    """
    from torch.distributed.fsdp import fully_shard

    for child in model.children():
        if isinstance(child, torch.nn.ModuleList):
            for block in child:
                fully_shard(block)
    fully_shard(model)
    return model


def full_state(x: Any) -> Any:
    """``x`` (a state dict, nested dicts/lists) with every ``DTensor`` gathered into a plain
    tensor; other values as they are. A collective under FSDP: call it on every rank."""
    from torch.distributed.tensor import DTensor

    if isinstance(x, DTensor):
        return x.full_tensor()
    if isinstance(x, dict):
        return {k: full_state(v) for k, v in x.items()}
    if isinstance(x, list):
        return [full_state(v) for v in x]
    if isinstance(x, tuple):
        return tuple(full_state(v) for v in x)
    return x


def _like(full: torch.Tensor, ref: Any) -> torch.Tensor:
    """``full`` distributed like the ``DTensor`` ``ref`` (a plain ``ref``: ``full`` itself)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(ref, DTensor):
        return full
    full = full.to(device=ref.device, dtype=ref.dtype)
    return distribute_tensor(full, ref.device_mesh, ref.placements)


def load_full_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full (unsharded) model state dict into an FSDP-sharded ``model`` (every rank,
    with the same ``state``)."""
    current = model.state_dict()
    model.load_state_dict({k: _like(v, current.get(k)) for k, v in state.items()})


def load_full_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a full optimizer state dict (the format of a one-process run) into an optimizer
    over ``DTensor`` parameters, sharding each moment like its parameter (every rank)."""
    opt.load_state_dict(state)
    for group in opt.param_groups:
        for p in group["params"]:
            s = opt.state.get(p, {})
            for k, v in s.items():
                if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape == p.shape:
                    s[k] = _like(v, p)


def rng_state() -> dict[str, Any]:
    """Every RNG's state, in a form ``torch.load(..., weights_only=True)`` accepts."""
    np_state = np.random.get_state()  # noqa: NPY002 - libraries may use the global RNG
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (the CUDA part only where CUDA is present)."""
    torch.set_rng_state(state["torch"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))  # noqa: NPY002
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x
