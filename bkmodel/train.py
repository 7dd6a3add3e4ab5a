"""``bk train``: the training loop for ResNet-BK and the Transformer baseline.

One loop, no framework. Per optimizer step (:meth:`Trainer.step`):

1. the global batch of step ``s`` is the sampler's samples ``(s + skip)·B ... (s + skip + 1)·B``
   (:class:`bkmodel.data.ChunkSampler`); DDP rank ``r`` of ``W`` takes rows ``r::W``;
2. forward under bf16 autocast on CUDA (fp32 on CPU), backward (DDP all-reduces gradients);
3. **guards**: the loss (averaged over ranks) and the global gradient norm must be finite,
   else the step is skipped (after ``max_consecutive_nonfinite`` skips in a row, or if a weight
   is non-finite, training rolls back); a step the model's runtime certificates mark
   (``last_aux["skip_step"]``) or whose forward raises ``bkmodel.guards.GuardError`` is skipped
   the same way; a loss above ``spike_factor`` × the running median is a spike: the step is not
   applied, the last good checkpoint is reloaded and the offending batch is skipped; the
   gradient norm is clipped and logged, norms above 10× the running median are flagged; the
   model's certificate-guard counters (``guard_report()``, carried across resumes) and MoE
   statistics (``last_aux``) are logged;
4. AdamW step with the warm-up + cosine learning rate of step ``s`` (:mod:`bkmodel.optim`).

Long-context switches (``TrainConfig.reset_at_documents``, ``TrainConfig.tbptt``; both off by
default, docs/tutorials/long_context.md): with ``reset_at_documents`` the forward gets the
``reset`` mask of the batch (:func:`bkmodel.data.batch_resets`: True at every document's
first token), so no BK chain carries one play into the next and no Transformer token attends
across a document start (block-diagonal causal attention). With ``tbptt`` the batch of data
index ``k = s + skip`` is :func:`bkmodel.data.tbptt_starts` instead of the shuffled
sampler: row ``r`` reads window ``k mod shard`` of its own contiguous shard, and the model
state returned by the forward of step ``s`` is detached and passed as ``state`` to step
``s + 1`` (gradients stop at the window edge; the forward still continues the stream
exactly). The state starts fresh at ``k mod shard == 0`` (the shard wraps around), after a
skipped step and after a rollback (the data position jumps); it is saved in the checkpoint,
so ``--resume`` continues it exactly (one process; under DDP a resume restarts it). The
Transformer baseline has no state: ``tbptt`` only changes its data order. The CUDA-graph
step supports neither switch, for either model (``TrainConfig`` refuses the combination).

Checkpoints (:mod:`bkmodel.checkpoint`) are written by rank 0 every ``ckpt_every`` steps and
at exit, atomically and with a SHA-256, so a torn or altered file is detected and the previous
good one is used. ``--resume`` restores model, optimizer, step, data position, loss window,
guard counters and every RNG (:class:`TrainState`, :mod:`bkmodel.distributed`), and truncates
the metrics log (:mod:`bkmodel.metrics`) to the checkpoint: the resumed run reproduces the
uninterrupted loss curve exactly (tested with ``kill -9``).

Throughput (``tokens_per_s``) counts optimizer steps only (data, forward, backward, update):
evaluation, checkpoints and the first five steps of a process (allocation, kernel
compilation) are excluded. Under DDP every rank runs the ranks' share of each step and
``tokens_per_s`` is the global rate. Every skip, rollback and checkpoint decision is taken
from flags all-reduced over the ranks (:meth:`bkmodel.distributed.Dist.any`), so a
``GuardError``, a non-finite loss or a non-finite weight on one rank alone is handled the same
on every rank (tested with gloo, a fault on rank 1 only). The MoE load-balance loss is that of
the global batch (:func:`bkmodel.moe.global_balance_correction`, one all-reduce of the
per-expert load fractions after the forward).

FSDP (``parallel="fsdp"``, under ``torchrun``): FSDP2's ``fully_shard`` on every block and
the root (:func:`bkmodel.distributed.shard_model`). Checkpoints are gathered on every rank
and written by rank 0 as full state dicts in the one-process format, so they load and resume
on one process; evaluation and the final export run on rank 0 on an unsharded copy of the
model refreshed from the gathered weights. A ``GuardError`` inside an FSDP forward cannot be
skipped collectively (the other ranks are already in the next block's all-gather): it stops
the run on every rank. An MoE whose sparse dispatch may leave an expert without a gradient is
refused (``moe_dispatch="dense"`` works).

CUDA graphs (``cuda_graph=True``, ``bk train --cuda-graph true``; one GPU, no DDP): the
forward + backward of a step is replayed from a CUDA graph (:mod:`bkmodel.cuda_graph`);
everything after the backward is the same as in eager mode. Measured throughput of both
modes: ``README.md`` and ``benchmarks/results/``.

Run directory (``--out``): ``config.json``, ``tokenizer.json``, ``checkpoint.pt``,
``checkpoint.prev.pt``, ``metrics.jsonl`` (one JSON object per log/eval/event line),
``curves.png``, ``model/`` (``save_pretrained`` export), ``summary.json``.

Fault injection (tests only): ``BK_FAULT_KILL_AT_STEP=s`` sends SIGKILL to the process right
after step ``s``; ``BK_FAULT_KILL_IN_CKPT_WRITE=n`` kills it half-way through writing its
``n``-th checkpoint (:func:`bkmodel.checkpoint.write_checkpoint`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from bkmodel.checkpoint import (
    CKPT_NAME,
    CheckpointError,
    load_checkpoint,
    load_run,
    model_spec,
    write_checkpoint,
)
from bkmodel.cuda_graph import GraphedStep
from bkmodel.data import (
    ChunkSampler,
    batch_from_stream,
    batch_resets,
    load_split,
    rank_rows,
    tbptt_starts,
)
from bkmodel.distributed import (
    Dist,
    full_state,
    load_full_model_state,
    load_full_optimizer_state,
    may_leave_parameters_unused,
    params_finite,
    rng_state,
    set_rng_state,
    shard_model,
)
from bkmodel.evaluate import check_device, evaluate_stream
from bkmodel.factory import build_model
from bkmodel.guards import GuardError
from bkmodel.metrics import MetricsLog, aux_stats, guard_counts, plot_metrics
from bkmodel.model import LanguageModel, detach_state
from bkmodel.moe import MoE, global_balance_correction
from bkmodel.optim import build_optimizer, lr_at
from bkmodel.presets import PRESETS, TrainConfig, get_preset
from bkmodel.tokenizer import Tokenizer, encode_documents, get_tokenizer, save_tokenizer

__all__ = [
    "RESUMABLE_CHANGES",
    "TrainState",
    "Trainer",
    "TrainingDiverged",
    "configure_parser",
    "run",
    "train",
    # compatibility re-exports (see the end of this module; tiny_demo too, not listed here
    # because it is resolved lazily)
    "CheckpointError",
    "build_model",
    "evaluate_stream",
    "load_checkpoint",
    "load_run",
    "lr_at",
    "plot_metrics",
]

# Fields that may differ between a run and its --resume (they don't change the trajectory).
RESUMABLE_CHANGES = {"max_steps", "log_every", "eval_every", "eval_tokens", "ckpt_every",
                     "device", "max_rollbacks", "parallel"}


class TrainingDiverged(RuntimeError):
    """The stability guards gave up (too many rollbacks, or no good checkpoint to return to)."""


# ---------------------------------------------------------------------------------------------
# the state of a run
# ---------------------------------------------------------------------------------------------


def _zero_counters() -> dict[str, int]:
    return {"nonfinite_skips": 0, "spikes": 0, "rollbacks": 0, "grad_norm_flags": 0,
            "guard_skips": 0, "guard_errors": 0}


@dataclass
class TrainState:
    """The loop's mutable state; everything but ``saved_step`` goes into a checkpoint.

    Attributes
    ----------
    step : int
        Steps done; a skipped step counts (its batch is consumed, no update is made).
    skip : int
        Batches passed over by rollbacks: step ``s`` trains on the sampler's batch ``s + skip``.
    tokens : int
        Training tokens of the applied steps (global, all ranks).
    window, gn_window : list of float
        The last ``spike_window`` accepted losses and gradient norms (for the medians).
    counters : dict
        Skips by reason, spikes, rollbacks, gradient-norm flags (logged and summarised).
    guard_offset : dict
        Guard counters of the processes before a resume: the model's counters live outside
        its ``state_dict``, so a resumed run adds these to its own.
    saved_step : int or None
        Step of the last checkpoint this process wrote or resumed from.
    """

    step: int = 0
    skip: int = 0
    tokens: int = 0
    window: list[float] = field(default_factory=list)
    gn_window: list[float] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=_zero_counters)
    guard_offset: dict[str, float] = field(default_factory=dict)
    saved_step: int | None = None


@dataclass
class _Throughput:
    """Tokens/s of optimizer steps: over the whole process after ``warm`` steps (the summary)
    and over the current log interval (the logged rows)."""

    warm: int
    steps_seen: int = 0
    t_train: float = 0.0
    tokens_timed: int = 0
    t_win: float = 0.0
    tokens_win: int = 0

    def add(self, seconds: float, tokens: int) -> float:
        """Count one step; returns the rate of the current interval."""
        self.steps_seen += 1
        if self.steps_seen > self.warm:
            self.t_train += seconds
            self.tokens_timed += tokens
        self.t_win += seconds
        self.tokens_win += tokens
        return self.tokens_win / self.t_win if self.t_win > 0 else 0.0

    def new_interval(self) -> None:
        self.t_win, self.tokens_win = 0.0, 0

    def overall(self) -> float | None:
        if self.t_train > 0:
            return self.tokens_timed / self.t_train
        return self.tokens_win / self.t_win if self.t_win else None


def _to_device(state: Any, device: torch.device) -> Any:
    """A model state (tensors, lists, dicts, None) moved to ``device``."""
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, dict):
        return {k: _to_device(v, device) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [_to_device(v, device) for v in state]
    return state


def _params_finite(model: nn.Module) -> bool:
    return params_finite(model)


def _prepare_data(cfg: TrainConfig, cache_dir: Path | None
                  ) -> tuple[Tokenizer, np.ndarray, np.ndarray]:  # fmt: skip
    train_docs = load_split("train", cfg.corpus)
    tok = get_tokenizer(cfg.tokenizer, train_docs, cfg.vocab_size, cache_dir=cache_dir)
    train_tokens = encode_documents(tok, train_docs)
    val_tokens = encode_documents(tok, load_split("validation", cfg.corpus))
    return tok, train_tokens, val_tokens


def _check_resume_config(saved: dict[str, Any], cfg: TrainConfig) -> None:
    saved = TrainConfig.migrate(saved)  # a checkpoint may use deprecated names
    # a field newer than the checkpoint had its default value there
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.default is not dataclasses.MISSING}
    saved = {**defaults, **saved}
    diffs = [k for k, v in cfg.to_dict().items()
             if k not in RESUMABLE_CHANGES and saved.get(k) != v]
    if diffs:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {getattr(cfg, k)!r}"
                           for k in diffs)
        raise CheckpointError(f"--resume with a different configuration ({detail}); "
                              "resume with the same settings or start a new --out directory")


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------


class Trainer:
    """One training run of ``cfg`` into ``out`` (use :func:`train`, which also installs the
    signal handlers and owns the process group).

    The constructor does the set-up in a fixed order (run directory, resume check, data and
    tokenizer, seeds, model, optimizer, step-0 checkpoint or restore), so that a run and its
    resume draw the same random numbers; :meth:`fit` runs the loop and returns the summary.
    """

    def __init__(self, cfg: TrainConfig, out: Path, dist: Dist, *, resume: bool,
                 fault: Callable[[int, nn.Module, torch.Tensor], None] | None, progress: bool,
                 cache_dir: Path | None, say: Callable[[str], None]) -> None:  # fmt: skip
        from tqdm import tqdm

        self.cfg, self.out, self.dist, self.fault, self.say = cfg, out, dist, fault, say
        self.ckpt_path = out / CKPT_NAME
        self.metrics = MetricsLog(out / "metrics.jsonl", dist.is_main)
        saved_state = self._open_run_dir(resume)
        self.tok, self.train_tokens, self.val_tokens = _prepare_data(cfg, cache_dir)
        self.tbptt_shard = 0  # windows per row's shard (tbptt)
        if cfg.tbptt:  # ValueError naming batch_size when the stream is too short
            tbptt_starts(len(self.train_tokens), cfg.seq_len, cfg.batch_size, 0)
            self.tbptt_shard = (len(self.train_tokens) - 1) // cfg.seq_len // cfg.batch_size
        if dist.is_main:
            save_tokenizer(self.tok, out / "tokenizer.json")
            (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self.tok_doc = (out / "tokenizer.json").read_text() if dist.is_main else ""
        self._build_model()
        self.sampler = ChunkSampler(len(self.train_tokens), cfg.seq_len, cfg.seed)
        self.rows = rank_rows(cfg.batch_size, dist.rank, dist.world)
        # long-context switches: resets for both models (the Transformer masks attention),
        # a carried state only where the model has one (ResNet-BK)
        is_bk = isinstance(self.raw, LanguageModel)
        self.use_resets = cfg.reset_at_documents
        self.carry = cfg.tbptt and is_bk
        self.carried: Any = None  # the detached state after the last applied step (tbptt)
        if not is_bk and cfg.tbptt:
            say("transformer: no carried state; tbptt only sets the data order (contiguous "
                "windows per row)")
        self.state = TrainState()
        self._start(saved_state)

        self.gstep: GraphedStep | None = None
        if cfg.cuda_graph:
            if dist.device.type != "cuda" or dist.world > 1:
                say("cuda_graph: needs one CUDA device (no DDP); training eagerly")
            else:
                self.gstep = GraphedStep(self.raw, self.amp_dtype, self.tok.vocab_size)
        kill_at = os.environ.get("BK_FAULT_KILL_AT_STEP")
        self.kill_at = int(kill_at) if kill_at is not None else None
        self.bar = tqdm(total=cfg.max_steps, initial=self.state.step, disable=not progress,
                        desc=f"train {cfg.model}", unit="step", dynamic_ncols=True)
        self.tok_per_step = cfg.batch_size * cfg.seq_len
        self.consecutive_bad = 0
        # throughput: optimizer steps only (data, forward, backward, update); evaluation,
        # checkpoints and the first `warm` steps of this process (allocator, kernel
        # compilation) are excluded. Logged rows carry the throughput of the last interval.
        self.throughput = _Throughput(warm=min(5, max(0, (cfg.max_steps - self.state.step) // 2)))

    def _open_run_dir(self, resume: bool) -> dict[str, Any] | None:
        """Create the run directory; the checkpoint to resume from (None for a new run)."""
        out, dist = self.out, self.dist
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
        dist.barrier()
        if resume:
            saved_state, used = load_checkpoint(out)
            _check_resume_config(saved_state["train_config"], self.cfg)
            self.say(f"resuming from {used} at step {saved_state['step']}")
            return saved_state
        if dist.is_main and self.ckpt_path.exists():
            raise CheckpointError(f"{out} already holds a run ({self.ckpt_path}); pass --resume "
                                  "to continue it or choose another --out directory")
        return None

    def _build_model(self) -> None:
        """Seed every RNG, then the model (DDP-wrapped under torchrun), AdamW, precision."""
        cfg, dist = self.cfg, self.dist
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)  # noqa: NPY002 - global RNG seeded for reproducibility
        random.seed(cfg.seed)
        self.raw = build_model(cfg, self.tok.vocab_size).to(dist.device)
        self.model: nn.Module = self.raw  # what the forward runs through (DDP or the model)
        self.n_params = self.raw.num_params()
        self.spec = model_spec(self.raw)  # before fully_shard renames the class
        self.fsdp = cfg.parallel == "fsdp" and dist.world > 1
        self.eval_copy: nn.Module | None = None  # FSDP: rank 0's unsharded model
        moes = [m for m in self.raw.modules() if isinstance(m, MoE)]
        if dist.world > 1:  # the global batch's load-balance loss (global_balance_correction)
            for m in moes:
                m.balance_records = []
        if self.fsdp:
            if any(m.top_k < m.num_experts and m.dispatch != "dense" for m in moes):
                raise ValueError("parallel='fsdp' with a sparse MoE (top_k < num_experts) "
                                 "may leave an expert without a gradient on one rank; use "
                                 "model option moe_dispatch='dense' or parallel='ddp'")
            if dist.is_main:
                import copy

                self.eval_copy = copy.deepcopy(self.raw)
            shard_model(self.raw)
        elif dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [dist.device.index] if dist.device.type == "cuda" else None
            # unused parameters only where an MoE may leave an expert unchosen; True for a model
            # without them costs a traversal per step and warns on every rank
            self.model = DDP(self.raw, device_ids=ids,
                             find_unused_parameters=may_leave_parameters_unused(self.raw))
        self.opt = build_optimizer(self.raw, cfg)
        use_bf16 = cfg.precision == "bf16" or (
            cfg.precision == "auto" and dist.device.type == "cuda"
            and torch.cuda.is_bf16_supported()
        )
        self.amp_dtype = torch.bfloat16 if use_bf16 else None

    def _start(self, saved_state: dict[str, Any] | None) -> None:
        """Restore the resumed state, or write the step-0 checkpoint and the start event."""
        cfg, dist = self.cfg, self.dist
        if saved_state is not None:
            self.restore(saved_state, keep_counters=False)
            self.state.saved_step = self.state.step
            self.metrics.truncate(self.state.step, keep_events=False)
        else:
            if dist.is_main and self.metrics.path.exists():
                self.metrics.path.unlink()
            self.save()  # step 0: there is always a good checkpoint to roll back to
            self.metrics.write({"event": "start", "step": 0, "params": self.n_params,
                                "model": cfg.model, "world_size": dist.world,
                                "device": str(dist.device), "amp": str(self.amp_dtype)})
        self.say(f"{cfg.model}: {self.n_params:,} parameters, {len(self.train_tokens):,} "
                 f"training tokens, vocab {self.tok.vocab_size}, world size {dist.world}, "
                 f"device {dist.device}, {'bf16 autocast' if self.amp_dtype else 'fp32'}")

    # -- checkpoints ---------------------------------------------------------------------------

    def guard_totals(self) -> dict[str, float]:
        """The model's guard counters over the whole run (earlier processes included)."""
        counts = guard_counts(self.raw)
        off = self.state.guard_offset
        return {k: counts.get(k, 0.0) + off.get(k, 0.0) for k in set(counts) | set(off)}

    def snapshot(self) -> dict[str, Any]:
        """The checkpoint payload of the current state (:mod:`bkmodel.checkpoint`)."""
        st = self.state
        return {"format": 1, "step": st.step, "skip": st.skip,
                "window": list(st.window), "gn_window": list(st.gn_window),
                "tokens": st.tokens, "counters": dict(st.counters),
                "guard_totals": self.guard_totals(),
                "model": self._full(self.raw.state_dict()),
                "optimizer": self._full(self.opt.state_dict()),
                "rng": rng_state(), "train_config": self.cfg.to_dict(),
                "model_spec": self.spec, "tokenizer": self.tok_doc,
                "n_params": self.n_params,
                # tbptt: the state the next step continues (one process only: under DDP the
                # other ranks' rows are not here, and a resume starts fresh)
                "carried_state": self.carried if self.dist.world == 1 else None}

    def restore(self, state: dict[str, Any], *, keep_counters: bool) -> None:
        """Load a checkpoint payload: weights, optimizer, RNGs, step, tokens, loss windows;
        with ``keep_counters`` (a rollback) the counters and ``skip`` stay as they are."""
        st = self.state
        if self.fsdp:  # the full state, scattered into this rank's shards
            load_full_model_state(self.raw, state["model"])
            load_full_optimizer_state(self.opt, state["optimizer"])
        else:
            self.raw.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        st.step, st.tokens = state["step"], state["tokens"]
        st.window, st.gn_window = list(state["window"]), list(state["gn_window"])
        if not keep_counters:
            st.skip = state["skip"]
            st.counters = dict(state["counters"])
            # the model's guard counters live outside its state_dict: carry them as an offset
            now = guard_counts(self.raw)
            st.guard_offset = {k: v - now.get(k, 0.0)
                               for k, v in state.get("guard_totals", {}).items()}
        # a rollback jumps the data position: the carried state no longer continues it
        carried = None if keep_counters else state.get("carried_state")
        if carried is not None and self.carry:
            carried = _to_device(carried, self.dist.device)
        self.carried = carried if self.carry else None

    def _full(self, state: Any) -> Any:
        """A state dict in the one-process format (FSDP: gathered, on every rank)."""
        return full_state(state) if self.fsdp else state

    def _weights_finite(self) -> bool:
        """True on every rank if every rank's weights (or FSDP shards) are finite."""
        return not self.dist.any(not _params_finite(self.raw))

    def _unsharded(self) -> nn.Module:
        """The model evaluation and the export run on (rank 0): the model itself, or with FSDP
        the unsharded copy loaded with the gathered weights (a collective: every rank calls
        it; the other ranks get the sharded model back and must not run it alone)."""
        if not self.fsdp:
            return self.raw
        weights = full_state(self.raw.state_dict())
        if self.eval_copy is None:
            return self.raw
        self.eval_copy.load_state_dict(weights)
        return self.eval_copy

    def save(self) -> None:
        """Write a checkpoint (rank 0; with FSDP every rank gathers); every rank waits."""
        if self.fsdp:
            payload = self.snapshot()
            if self.dist.is_main:
                write_checkpoint(self.ckpt_path, payload)
        elif self.dist.is_main:
            write_checkpoint(self.ckpt_path, self.snapshot())
        self.state.saved_step = self.state.step
        self.dist.barrier()

    def rollback(self, reason: str, bad_step: int) -> None:
        """Return to the last good checkpoint and resume past the batch of ``bad_step``.

        Raises
        ------
        TrainingDiverged
            After ``max_rollbacks`` rollbacks.
        """
        st, cfg = self.state, self.cfg
        st.counters["rollbacks"] += 1
        if st.counters["rollbacks"] > cfg.max_rollbacks:
            raise TrainingDiverged(f"training diverged: {reason} at step {bad_step} after "
                                   f"{cfg.max_rollbacks} rollbacks (see {self.metrics.path})")
        self.dist.barrier()
        state, used = load_checkpoint(self.out)
        self.restore(state, keep_counters=True)
        st.skip += bad_step + 1 - state["step"]  # resume past the offending batch
        self.metrics.truncate(st.step, keep_events=True)
        self.metrics.write({"event": "rollback", "step": st.step, "from_step": bad_step,
                            "reason": reason, "checkpoint": used.name, "skip": st.skip})
        self.say(f"rollback: {reason} at step {bad_step}; back to step {st.step} ({used.name})")

    # -- one step ------------------------------------------------------------------------------

    def step(self) -> None:
        """One iteration: the batch of step ``state.step``, forward, backward, the guards,
        then either a skip, a rollback, or the update with its logging, evaluation and
        checkpoint."""
        cfg = self.cfg
        step = self.state.step
        t0 = time.perf_counter()
        starts = self._starts(step)
        batch = self._batch(step, starts)
        reset = self._reset_mask(starts)
        state = self._state_in(step)
        if self.fault is not None:
            self.fault(step, self.raw, batch)
        lr = lr_at(step, cfg)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.raw.train()
        loss_val, gnorm, reason, new_state = self._forward_backward(batch, step, reset=reset,
                                                                    state=state)
        if reason is not None:
            self.carried = None  # the stream is broken: the next step starts fresh
            self._skip(step, reason, loss_val, gnorm)
            return
        window = self.state.window
        if (len(window) >= cfg.spike_window
                and loss_val > cfg.spike_factor * statistics.median(window)):
            self.carried = None
            self._spike(step, loss_val)
            return
        self.carried = new_state
        self._apply(loss_val, gnorm)
        if self.dist.device.type == "cuda":
            torch.cuda.synchronize()
        tps = self.throughput.add(time.perf_counter() - t0, self.tok_per_step)
        self._after_update(lr, loss_val, gnorm, tps)

    def _starts(self, step: int) -> np.ndarray:
        """Window starts of this rank's rows at step ``step``: the shuffled sampler's, or with
        ``tbptt`` the contiguous shards' (:func:`bkmodel.data.tbptt_starts`)."""
        cfg = self.cfg
        k = step + self.state.skip
        if cfg.tbptt:
            return tbptt_starts(len(self.train_tokens), cfg.seq_len, cfg.batch_size,
                                k)[self.rows]
        return self.sampler.starts(k * cfg.batch_size, cfg.batch_size)[self.rows]

    def _reset_mask(self, starts: np.ndarray) -> torch.Tensor | None:
        """The batch's ``reset`` mask (``reset_at_documents``, either model), else None."""
        if not self.use_resets:
            return None
        mask = batch_resets(self.train_tokens, starts, self.cfg.seq_len, self.tok.eot_id)
        return torch.from_numpy(mask).to(self.dist.device)

    def _state_in(self, step: int) -> Any:
        """The state step ``step`` continues (``tbptt``, ResNet-BK): the previous step's,
        None at the start of a shard or when there is none."""
        if not self.carry or (step + self.state.skip) % self.tbptt_shard == 0:
            return None
        return self.carried

    def _batch(self, step: int, starts: np.ndarray) -> torch.Tensor:
        cfg = self.cfg
        batch = torch.from_numpy(batch_from_stream(self.train_tokens, starts, cfg.seq_len))
        if self.gstep is not None:  # the graph cannot read values: check ids on the host
            self.gstep.check_ids(batch)
        return batch.to(self.dist.device)

    def _forward_backward(self, batch: torch.Tensor, step: int, *,
                          reset: torch.Tensor | None = None, state: Any = None
                          ) -> tuple[float, float, str | None, Any]:  # fmt: skip
        """Gradients of ``batch`` (clipped); returns ``(loss, grad norm, skip reason, new
        state)``, the reason None for a good step and the same on every rank; the new state
        (detached) only with ``tbptt`` on ResNet-BK, else None. ``reset`` (either model) and
        ``state`` (ResNet-BK only) go to the model's forward."""
        dist, amp_dtype = self.dist, self.amp_dtype
        guard_error: Exception | None = None
        backward_done = False
        loss: torch.Tensor | None = None
        new_state: Any = None
        try:
            if self.gstep is not None:
                backward_done = self.gstep.run(batch)
                loss = self.gstep.loss
                if not backward_done:  # recompute_fp64 violation: redo eagerly
                    self.opt.zero_grad(set_to_none=True)
            if not backward_done:
                with torch.autocast(dist.device.type, dtype=amp_dtype or torch.float32,
                                    enabled=amp_dtype is not None):
                    if self.carry:
                        _, loss, new_state = self.model(batch[:, :-1], batch[:, 1:],
                                                        state=state, reset=reset,
                                                        return_state=True)
                        new_state = detach_state(new_state)
                    elif reset is not None:
                        _, loss = self.model(batch[:, :-1], batch[:, 1:], reset=reset)
                    else:
                        _, loss = self.model(batch[:, :-1], batch[:, 1:])
        except GuardError as exc:  # a certificate the configured action could not repair
            if self.fsdp:  # the other ranks wait in an all-gather of the forward: stop all
                raise
            guard_error, loss = exc, None
        if dist.any(guard_error is not None):  # every rank skips the backward together
            self.say(f"step {step + 1}: {guard_error or 'guard error on another rank'}")
            self._balance_correction(drop=True)
            return math.nan, math.nan, "guard_errors", None
        assert loss is not None
        corr = self._balance_correction()
        if corr is not None:  # the global batch's load-balance loss (bkmodel.moe)
            loss = loss + self.raw.config.aux_loss_weight * corr
        if not backward_done:
            loss.backward()
        loss_val = float(dist.mean(loss.detach().float()))
        gn = torch.nn.utils.clip_grad_norm_(self.raw.parameters(), self.cfg.grad_clip)
        gnorm = float(gn.full_tensor() if hasattr(gn, "full_tensor") else gn)  # FSDP: DTensor
        reason = None
        aux = getattr(self.raw, "last_aux", None) or {}
        # one all-reduce of both flags: every rank takes the same decision
        guard_skip, nonfinite = dist.any_each([
            bool(aux.get("skip_step")), not (math.isfinite(loss_val) and math.isfinite(gnorm))])
        if guard_skip:
            reason = "guard_skips"
        if nonfinite:
            reason = "nonfinite_skips"
        return loss_val, gnorm, reason, new_state

    def _balance_correction(self, *, drop: bool = False) -> torch.Tensor | None:
        """The MoE load-balance correction of the last forward (None with one process, or
        without a learned gate); with ``drop`` the records are discarded (a skipped step)."""
        if self.dist.world == 1:
            return None
        if drop:
            for m in self.raw.modules():
                if isinstance(m, MoE) and m.balance_records:
                    m.balance_records.clear()
            return None
        return global_balance_correction(self.raw, self.dist.mean)

    def _skip(self, step: int, reason: str, loss_val: float, gnorm: float) -> None:
        """A step without an update; rolls back after too many in a row or on bad weights."""
        st = self.state
        self.opt.zero_grad(set_to_none=True)
        st.counters[reason] = st.counters.get(reason, 0) + 1
        self.consecutive_bad += 1
        self.metrics.write({"event": "skip", "step": step + 1, "loss": loss_val,
                            "grad_norm": gnorm, "reason": reason})
        self.say(f"step {step + 1}: skipped ({reason}: loss={loss_val}, grad_norm={gnorm})")
        weights_ok = self._weights_finite()
        if not weights_ok or self.consecutive_bad >= self.cfg.max_consecutive_nonfinite:
            self.rollback("non-finite weights" if not weights_ok else
                          f"{self.consecutive_bad} bad steps in a row", step)
            self.consecutive_bad = 0
            return
        st.step += 1  # the batch is consumed, no update is made
        self.bar.update(1)

    def _spike(self, step: int, loss_val: float) -> None:
        """A loss spike: the step is not applied and training rolls back past its batch."""
        st, cfg = self.state, self.cfg
        median = statistics.median(st.window)
        self.opt.zero_grad(set_to_none=True)
        st.counters["spikes"] += 1
        self.metrics.write({"event": "spike", "step": step + 1, "loss": loss_val,
                            "median": median})
        self.rollback(f"loss spike {loss_val:.3f} > {cfg.spike_factor} x median "
                      f"{median:.3f}", step)
        self.consecutive_bad = 0

    def _apply(self, loss_val: float, gnorm: float) -> None:
        """The AdamW update of a good step, and the loss and gradient-norm windows."""
        st, cfg = self.state, self.cfg
        self.consecutive_bad = 0
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        st.window.append(loss_val)
        del st.window[: -cfg.spike_window]
        gn_window = st.gn_window
        if len(gn_window) >= cfg.spike_window and gnorm > 10 * statistics.median(gn_window):
            st.counters["grad_norm_flags"] += 1
            self.metrics.write({"event": "grad_norm_spike", "step": st.step + 1,
                                "grad_norm": gnorm, "median": statistics.median(gn_window)})
        gn_window.append(gnorm)
        del gn_window[: -cfg.spike_window]
        st.step += 1
        st.tokens += self.tok_per_step

    def _after_update(self, lr: float, loss_val: float, gnorm: float, tps: float) -> None:
        """Progress bar, the log row, the evaluation and the checkpoint of a finished step."""
        cfg, st, dist = self.cfg, self.state, self.dist
        step = st.step
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss_val:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            row = {"step": step, "loss": loss_val, "lr": lr, "grad_norm": gnorm,
                   "tokens": st.tokens, "tokens_per_s": tps}
            self.throughput.new_interval()
            row.update({f"aux.{k}": v for k, v in aux_stats(self.raw).items()})
            row.update({f"guard.{k}": v for k, v in sorted(self.guard_totals().items())})
            row.update(st.counters)
            self.metrics.write(row)
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            model = self._unsharded()  # FSDP: a gather on every rank
        if dist.is_main and (step % cfg.eval_every == 0 or step == cfg.max_steps):
            ev = evaluate_stream(model, self.val_tokens, cfg.seq_len,
                                 batch_size=cfg.batch_size, max_tokens=cfg.eval_tokens,
                                 device=dist.device, autocast_dtype=self.amp_dtype)
            self.metrics.write({"step": step, "val_loss": ev["loss"], "val_ppl": ev["ppl"]})
            self.bar.write(f"step {step}: train loss {loss_val:.4f}, val loss "
                           f"{ev['loss']:.4f} (ppl {ev['ppl']:.2f}), {tps:,.0f} tok/s")
        if step % cfg.ckpt_every == 0:
            if not self._weights_finite():
                self.rollback("non-finite weights at checkpoint time", step - 1)
                return
            self.save()
        if self.kill_at is not None and step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    # -- the run -------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train to ``max_steps``; returns the summary (rank 0; ``{}`` on the other ranks).

        A stop request (SIGTERM, a first Ctrl-C) ends the run at the next step boundary
        with a checkpoint and re-raises as ``KeyboardInterrupt``.
        """
        st = self.state
        steps_to_run = self.cfg.max_steps - st.step
        try:
            while st.step < self.cfg.max_steps:
                if self.dist.any(bool(_STOP)):  # all ranks stop at the same step
                    raise KeyboardInterrupt(f"signal {sorted(_STOP)}")
                self.step()
        except KeyboardInterrupt:
            self.bar.close()
            if self._weights_finite():
                self.save()
                self.say(f"interrupted: checkpoint written at step {st.step}; continue with "
                         "--resume")
            raise
        self.bar.close()
        if st.saved_step != st.step and self._weights_finite():
            self.save()
        final_model = self._unsharded()  # FSDP: a gather on every rank
        kept = self._kept_summary() if steps_to_run <= 0 and self.dist.is_main else None
        if kept is not None:
            self.say(f"the run in {self.out} already finished at step {st.step} "
                     f"(max_steps {self.cfg.max_steps}); summary.json kept as it is")
            summary = kept
        else:
            summary = self._finish(final_model) if self.dist.is_main else {}
        self.dist.barrier()
        return summary

    def _kept_summary(self) -> dict[str, Any] | None:
        """The ``summary.json`` of a run resumed when already finished (nothing to train:
        rewriting it would lose the throughput, which only a process that trained measures);
        None when there is none for this step."""
        try:
            old = json.loads((self.out / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(old, dict) or old.get("steps") != self.state.step:
            return None
        return old

    def _finish(self, model: nn.Module) -> dict[str, Any]:
        """Final evaluation of ``model`` (the trained model, unsharded) on the whole
        validation split, exports, ``summary.json``, plot."""
        cfg, st, dist, out = self.cfg, self.state, self.dist, self.out
        final = evaluate_stream(model, self.val_tokens, cfg.seq_len, batch_size=cfg.batch_size,
                                device=dist.device, autocast_dtype=self.amp_dtype)
        model.save_pretrained(out / "model")
        summary: dict[str, Any] = {
            "model": cfg.model, "preset": cfg.preset, "params": self.n_params,
            "steps": st.step, "tokens": st.tokens,
            "train_tokens_per_s": self.throughput.overall(),
            "val_loss": final["loss"], "val_ppl": final["ppl"], "val_tokens": final["tokens"],
            "eval_tokens_per_s": final["tokens_per_s"], "counters": st.counters,
            "guard": self.guard_totals(),
            "world_size": dist.world, "device": str(dist.device),
            "precision": "bf16" if self.amp_dtype else "fp32",
        }
        self.metrics.write({"event": "end", "step": st.step,
                            **{k: summary[k] for k in ("val_loss", "val_ppl")}})
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        try:
            plot_metrics(out / "metrics.jsonl", out / "curves.png")
        except Exception as exc:  # noqa: BLE001 - a plot must never fail a finished run
            self.say(f"warning: could not plot the curves: {exc}")
        return summary


def train(
    config: TrainConfig,
    out_dir: Path | str,
    *,
    resume: bool = False,
    fault: Callable[[int, nn.Module, torch.Tensor], None] | None = None,
    progress: bool = True,
    cache_dir: Path | str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` into ``out_dir``; returns the run summary (also ``summary.json``).

    Parameters
    ----------
    config : TrainConfig
    out_dir : path
        Run directory (created). With ``resume``, training continues from its newest good
        checkpoint (the configuration must agree except for :data:`RESUMABLE_CHANGES`).
    fault : callable, optional
        ``fault(step, model, batch)`` is called before every forward pass (fault injection
        in tests: corrupt a weight, poison an activation).
    progress : bool
        Show a tqdm bar (rank 0) with loss and tokens/s.
    cache_dir : path, optional
        Tokenizer cache (default ``$BK_CACHE_DIR`` or ``~/.cache/resnet-bk``).
    log : callable, optional
        Receives the loop's messages (default: stderr); rank 0 only.

    Raises
    ------
    TrainingDiverged
        If ``max_rollbacks`` rollbacks did not restore stable training.
    CheckpointError
        If ``resume`` finds no usable checkpoint or a different configuration.
    ValueError
        If ``config.device`` cannot be used by this torch (checked before ``out_dir`` is
        created).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    cfg = config
    out = Path(out_dir)
    check_device(cfg.device)  # before anything is written into out_dir
    dist = Dist(cfg.device)
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    old_handlers = {}
    _STOP.clear()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (preemption) and a first Ctrl-C stop the run at the next step boundary,
        # where the state is consistent: checkpoint, then exit. A second Ctrl-C is immediate.
        for sig in (signal.SIGTERM, signal.SIGINT):
            old_handlers[sig] = signal.signal(sig, _request_stop)
    try:
        trainer = Trainer(cfg, out, dist, resume=resume, fault=fault,
                          progress=progress and dist.is_main,
                          cache_dir=Path(cache_dir) if cache_dir else None,
                          say=say if dist.is_main else (lambda msg: None))
        return trainer.fit()
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        dist.close()


_STOP: set[int] = set()


def _request_stop(signum, frame) -> None:
    if signum == signal.SIGINT and signum in _STOP:
        raise KeyboardInterrupt
    _STOP.add(signum)


# ---------------------------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------------------------


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


_parse_bool.__name__ = "bool"


def _override_fields() -> list[tuple[str, type]]:
    skip = {"preset", "model", "model_options"}
    out = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        typ = {"int": int, "float": float, "str": str, "int | None": int,
               "bool": _parse_bool}.get(str(f.type), str)
        out.append((f.name, typ))
    return out


# one line per override flag of `bk train` (the TrainConfig fields; see its docstring)
FIELD_HELP: dict[str, str] = {
    "corpus": "shakespeare (the complete works, split by work) or tiny (one play)",
    "tokenizer": "bpe (trained locally on the training split) or byte",
    "vocab_size": "BPE vocabulary size, EOT included (the byte tokenizer has 257)",
    "seq_len": "tokens per training window (the ResNet-BK chain length n_seq)",
    "batch_size": "global batch: rows per optimizer step, shared out across DDP ranks",
    "max_steps": "optimizer steps of the whole run",
    "d_model": "model width (both architectures)",
    "n_layers": "number of blocks (both architectures)",
    "n_heads": "attention heads (Transformer only)",
    "d_ff": "Transformer feed-forward width; omitted: match the ResNet-BK parameter count",
    "dropout": "dropout probability in [0, 1)",
    "lr": "peak learning rate (after the linear warm-up)",
    "min_lr_ratio": "cosine decay ends at min_lr_ratio * lr at max_steps",
    "warmup_steps": "steps of linear learning-rate warm-up",
    "weight_decay": "AdamW weight decay (matrices only)",
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "grad_clip": "clip the global gradient norm to this value",
    "precision": "auto (bf16 on a CUDA GPU that has it, else fp32), fp32 or bf16",
    "device": "auto, cpu, cuda or a device string such as cuda:1",
    "cuda_graph": "replay forward + backward from a CUDA graph (one CUDA GPU, no DDP)",
    "parallel": "under torchrun: ddp (replicated model) or fsdp (FSDP2 fully_shard: "
                "parameters, gradients and AdamW state sharded; checkpoints stay full)",
    "reset_at_documents": "restart the ResNet-BK chains at every document start of the "
                          "training stream (the Transformer: attention masked to the "
                          "document)",
    "tbptt": "truncated BPTT: contiguous windows per batch row, the ResNet-BK state carried "
             "(detached) from step to step",
    "seed": "seed of every RNG (model initialisation, data order, dropout)",
    "log_every": "write a metrics.jsonl row every this many steps",
    "eval_every": "evaluate on the validation split every this many steps",
    "eval_tokens": "validation tokens per in-training evaluation",
    "ckpt_every": "write a checkpoint every this many steps",
    "spike_factor": "a loss above spike_factor x the recent median is a spike: roll back",
    "spike_window": "accepted losses in the median of the spike rule",
    "max_rollbacks": "rollbacks allowed before the run stops as diverged",
    "max_consecutive_nonfinite": "non-finite steps skipped in a row before a rollback",
}


def _default_help(name: str) -> str:
    """Where the flag's value comes from when it is omitted: the TrainConfig default when no
    preset sets it, else each preset's value."""
    f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    values = {p: PRESETS[p].get(name, f.default) for p in PRESETS}
    if name not in set().union(*PRESETS.values()):
        return f"default {f.default}"
    if len({repr(v) for v in values.values()}) == 1:
        return f"default {next(iter(values.values()))} (every preset)"
    return "default: the preset's (" + ", ".join(f"{p} {v}" for p, v in values.items()) + ")"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS),
                        help="named configuration (default tiny); see bkmodel/presets.py")
    parser.add_argument("--model", default="bk", choices=("bk", "transformer"),
                        help="ResNet-BK (default) or the Transformer baseline")
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default runs/<preset>-<model>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last good checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--bk-option", "--model-option", dest="bk_option", action="append",
                        default=[], metavar="KEY=JSON",
                        help="a ModelConfig field for ResNet-BK (repeatable; TrainConfig."
                             "model_options, on top of the preset's), e.g. "
                             "--bk-option n_channels=4")
    group = parser.add_argument_group(
        "overrides of the preset", "fields of bkmodel.presets.TrainConfig; the preset's value "
        "when omitted (see bkmodel/presets.py)")
    for name, typ in _override_fields():
        text = f"{FIELD_HELP.get(name, name.replace('_', ' '))}; {_default_help(name)}"
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=typ, default=None,
                           metavar=typ.__name__.upper(), help=text.replace("%", "%%"))


def run(args: argparse.Namespace) -> int:
    overrides = {name: getattr(args, name) for name, _ in _override_fields()
                 if getattr(args, name, None) is not None}
    overrides["model"] = args.model
    try:
        if args.bk_option:  # on top of the preset's model options, not instead of them
            preset_options = get_preset(args.preset)["model_options"]
            overrides["model_options"] = {**preset_options, **dict(get_bk_options(args.bk_option))}
        cfg = TrainConfig.from_preset(args.preset, **overrides)
        if cfg.model == "bk":  # validate the model configuration before any work
            cfg.bk_model_config(cfg.vocab_size)
        check_device(cfg.device)  # --device cuda on a CPU-only torch: before --out is touched
    except (ValueError, TypeError) as exc:
        print(f"bk train: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / f"{cfg.preset}-{cfg.model}"
    try:
        summary = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    except (CheckpointError, TrainingDiverged) as exc:
        print(f"bk train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bk train: interrupted; continue with: bk train --out {out} --resume "
              "(and the same options)", file=sys.stderr)
        return 130
    if summary:
        print(f"{summary['model']}: {summary['params']:,} params, {summary['steps']} steps, "
              f"validation perplexity {summary['val_ppl']:.2f} "
              f"(loss {summary['val_loss']:.4f}), {_rate(summary['train_tokens_per_s'])} "
              f"train tokens/s -> {out}")
    return 0


def _rate(tps: float | None) -> str:
    """Tokens/s for the summary line; ``n/a`` when no step was timed (never a fake 0)."""
    return "n/a" if tps is None else f"{tps:,.0f}"


def get_bk_options(items: list[str]) -> list[tuple[str, Any]]:
    """Parse ``KEY=JSON`` strings (a bare word is taken as a string)."""
    out = []
    for item in items:
        if "=" not in item:
            raise ValueError(f"--bk-option must be KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out.append((key, json.loads(value)))
        except json.JSONDecodeError:
            out.append((key, value))
    return out


# ---------------------------------------------------------------------------------------------
# compatibility re-exports
# ---------------------------------------------------------------------------------------------
# These names used to be defined here and moved by concern (issue 12); new code imports them
# from their homes: CheckpointError, load_checkpoint, load_run (bkmodel.checkpoint),
# evaluate_stream (bkmodel.evaluate), build_model (bkmodel.factory), lr_at (bkmodel.optim),
# plot_metrics (bkmodel.metrics), tiny_demo (bkmodel.demo). All but tiny_demo are imported
# above. tiny_demo is looked up on first access: bkmodel.demo runs this module's train(), so
# a module-level import here would make the two modules import each other.


def __getattr__(name: str) -> Any:
    if name == "tiny_demo":
        return importlib.import_module("bkmodel.demo").tiny_demo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
