"""``bk train``: the training loop for ResNet-BK and the Transformer baseline.

One loop, no framework. Per optimizer step:

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
4. AdamW step with the warm-up + cosine learning rate of step ``s``.

Checkpoints are written by rank 0 every ``ckpt_every`` steps and at exit, atomically
(temporary file, fsync, rename; the previous checkpoint is kept as ``checkpoint.prev.pt``),
with a SHA-256 over the payload, so a torn or altered file is detected and the previous good
one is used. ``--resume`` restores model, optimizer, step, data position, loss window, guard
counters and every RNG, and truncates the metrics log to the checkpoint: the resumed run
reproduces the uninterrupted loss curve exactly (tested with ``kill -9``).

Throughput (``tokens_per_s``) counts optimizer steps only (data, forward, backward, update):
evaluation, checkpoints and the first five steps of a process (allocation, kernel
compilation) are excluded. Under DDP every rank runs the ranks' share of each step and
``tokens_per_s`` is the global rate; a ``GuardError`` raised on one rank only cannot be
skipped consistently (the other ranks are already in the gradient all-reduce) and stops the
run.

CUDA graphs (``cuda_graph=True``, ``bk train --cuda-graph true``; one GPU, no DDP): the
forward + backward of a step is captured once (after three warm-up passes) and replayed
from a CUDA graph, which removes the Python and launch overhead of the ~1,250 kernels of a
ResNet-BK step (``benchmarks/profile_train.py``). The batch's ids are checked on the host
before the copy into the graph's input; the certificate guards run in deferred mode and are
read once per step after the replay (:meth:`bkmodel.guards.ScanGuard.consume_deferred`):
``raise`` and ``skip_step`` act as before, a ``recompute_fp64`` violation redoes the step
eagerly with immediate guards. Everything after the backward (loss and gradient-norm checks,
clipping, spikes, rollbacks, AdamW, checkpoints, evaluation) is unchanged. Measured on an
H100 (``benchmarks/train_throughput.py --cuda-graph``): 2.3-2.9× the eager tokens/s.

Run directory (``--out``): ``config.json``, ``tokenizer.json``, ``checkpoint.pt``,
``checkpoint.prev.pt``, ``metrics.jsonl`` (one JSON object per log/eval/event line),
``curves.png``, ``model/`` (``save_pretrained`` export), ``summary.json``.

Fault injection (tests only): ``BK_FAULT_KILL_AT_STEP=s`` sends SIGKILL to the process right
after step ``s``; ``BK_FAULT_KILL_IN_CKPT_WRITE=n`` kills it half-way through writing its
``n``-th checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
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
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bkmath.io import atomic_write
from bkmodel.data import ChunkSampler, batch_from_stream, eval_windows, load_split, rank_rows
from bkmodel.presets import PRESETS, TrainConfig
from bkmodel.tokenizer import (
    Tokenizer,
    encode_documents,
    get_tokenizer,
    load_tokenizer,
    save_tokenizer,
)

try:
    from bkmodel.guards import GuardError as _GuardError
except ImportError:  # pragma: no cover - the ResNet-BK model is not installed

    class _GuardError(Exception):  # type: ignore[no-redef]
        pass


__all__ = [
    "CheckpointError",
    "TrainingDiverged",
    "build_model",
    "configure_parser",
    "evaluate_stream",
    "load_checkpoint",
    "load_run",
    "lr_at",
    "run",
    "tiny_demo",
    "train",
]

CKPT_MAGIC = b"RESNETBK-CKPT/1\n"
CKPT_NAME = "checkpoint.pt"
CKPT_PREV = "checkpoint.prev.pt"
# Fields that may differ between a run and its --resume (they don't change the trajectory).
RESUMABLE_CHANGES = {"max_steps", "log_every", "eval_every", "eval_tokens", "ckpt_every",
                     "device", "max_rollbacks"}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or incompatible (the message names it)."""


class TrainingDiverged(RuntimeError):
    """The stability guards gave up (too many rollbacks, or no good checkpoint to return to)."""


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------


def _bk_config(cfg: TrainConfig, vocab_size: int):
    from bkmodel.config import ModelConfig

    names = {f.name for f in dataclasses.fields(ModelConfig)}
    wanted: dict[str, Any] = {"vocab_size": vocab_size, "d_model": cfg.d_model,
                              "n_layers": cfg.n_layers}
    if "n_seq" in names:
        wanted["n_seq"] = cfg.seq_len
    if "dropout" in names:
        wanted["dropout"] = cfg.dropout
    wanted.update(cfg.bk_options)
    unknown = set(wanted) - names
    if unknown & set(cfg.bk_options):
        raise ValueError(f"bk_options has fields ModelConfig does not know: "
                         f"{sorted(unknown & set(cfg.bk_options))}")
    return ModelConfig(**{k: v for k, v in wanted.items() if k in names})


def _transformer_config(cfg: TrainConfig, vocab_size: int):
    from bkmodel.baseline import TransformerConfig, matched_config

    common = dict(vocab_size=vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers,
                  n_heads=cfg.n_heads, max_seq_len=cfg.seq_len, dropout=cfg.dropout)
    if cfg.d_ff is not None:
        return TransformerConfig(**common, d_ff=cfg.d_ff)
    try:
        target = _bk_param_count(cfg, vocab_size)
    except ImportError:  # the ResNet-BK model is not available: the usual 4·d_model
        return TransformerConfig(**common, d_ff=4 * cfg.d_model)
    return matched_config(target, **common)


def _bk_param_count(cfg: TrainConfig, vocab_size: int) -> int:
    from bkmodel.model import LanguageModel

    state = torch.get_rng_state()
    try:
        return int(LanguageModel(_bk_config(cfg, vocab_size)).num_params())
    finally:
        torch.set_rng_state(state)


def build_model(cfg: TrainConfig, vocab_size: int) -> nn.Module:
    """The model of ``cfg.model`` for a vocabulary of ``vocab_size`` tokens (seeded init)."""
    torch.manual_seed(cfg.seed)
    if cfg.model == "transformer":
        from bkmodel.baseline import TransformerBaseline

        return TransformerBaseline(_transformer_config(cfg, vocab_size))
    from bkmodel.model import LanguageModel

    model_cfg = _bk_config(cfg, vocab_size)
    torch.manual_seed(cfg.seed)
    return LanguageModel(model_cfg)


def _model_spec(model: nn.Module) -> dict[str, Any]:
    kind = "transformer" if type(model).__name__ == "TransformerBaseline" else "bk"
    conf = model.config
    conf_d = dataclasses.asdict(conf) if dataclasses.is_dataclass(conf) else dict(vars(conf))
    return {"kind": kind, "config": conf_d}


def _model_from_spec(spec: dict[str, Any]) -> nn.Module:
    if spec["kind"] == "transformer":
        from bkmodel.baseline import TransformerBaseline, TransformerConfig

        return TransformerBaseline(TransformerConfig.from_dict(spec["config"]))
    from bkmodel.config import ModelConfig
    from bkmodel.model import LanguageModel

    return LanguageModel(ModelConfig.from_dict(spec["config"]))


# ---------------------------------------------------------------------------------------------
# schedule, RNG, distributed
# ---------------------------------------------------------------------------------------------


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine to min_lr_ratio·lr.

    >>> c = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    >>> lr_at(0, c), lr_at(9, c), lr_at(10, c), round(lr_at(60, c), 6), round(lr_at(110, c), 6)
    (0.1, 1.0, 1.0, 0.55, 0.1)
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()  # noqa: NPY002 - libraries may use the global RNG
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))  # noqa: NPY002
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


class _Dist:
    """World size, rank and the collectives the loop needs (no-ops in a single process)."""

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
        if not self.enabled:
            return value
        value = value.detach().clone()
        self.dist.all_reduce(value)
        return value / self.world

    def any(self, flag: bool) -> bool:
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self.dist.all_reduce(t)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        if self.enabled:
            self.dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            self.dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------

_CKPT_WRITES = 0


def _write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic, verified write: temp file + fsync + rename; the old file becomes ``.prev``."""
    global _CKPT_WRITES
    _CKPT_WRITES += 1
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    blob = CKPT_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    kill_at = os.environ.get("BK_FAULT_KILL_IN_CKPT_WRITE")
    if kill_at is not None and int(kill_at) == _CKPT_WRITES:  # fault injection: a torn temp
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(blob[: len(blob) // 2])
            fh.flush()
            os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    # verify what reached the disk before it replaces anything
    atomic_write(path, blob, keep_previous=CKPT_PREV, verify=_read_checkpoint_file)


def _read_checkpoint_file(path: Path) -> dict[str, Any]:
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint missing: {path}") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint unreadable: {path}: {exc}") from exc
    head = len(CKPT_MAGIC) + 65
    if not blob.startswith(CKPT_MAGIC) or len(blob) < head:
        raise CheckpointError(f"checkpoint corrupt: {path} is not a ResNet-BK checkpoint "
                              f"(bad header, {len(blob)} bytes)")
    digest, payload = blob[len(CKPT_MAGIC): head - 1].decode("ascii", "replace"), blob[head:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"checkpoint corrupt: {path} fails its SHA-256 check "
                              f"(truncated or altered; {len(blob)} bytes)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is corruption
        raise CheckpointError(f"checkpoint corrupt: {path}: {exc}") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint corrupt: {path} has no model state")
    return state


def load_checkpoint(path: Path | str, *, fallback: bool = True) -> tuple[dict[str, Any], Path]:
    """The newest good checkpoint at ``path`` (a run directory or a checkpoint file).

    With ``fallback``, a missing or corrupt ``checkpoint.pt`` falls back to
    ``checkpoint.prev.pt`` (with a warning on stderr). Returns ``(state, file used)``.

    Raises
    ------
    CheckpointError
        If no usable checkpoint exists; the message names every file tried and why.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / CKPT_NAME] + ([path / CKPT_PREV] if fallback else [])
    elif path.exists() or not fallback:
        candidates = [path]
    else:
        candidates = [path, path.with_name(CKPT_PREV)]
    errors = []
    for cand in candidates:
        try:
            state = _read_checkpoint_file(cand)
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        if errors:
            print(f"warning: {errors[-1]}; using {cand}", file=sys.stderr)
        return state, cand
    if not path.exists():
        raise CheckpointError(f"checkpoint missing: {path} does not exist")
    raise CheckpointError("no usable checkpoint: " + "; ".join(errors))


def load_run(path: Path | str, device: str = "cpu") -> tuple[nn.Module, Tokenizer, dict]:
    """Model (eval mode), tokenizer and checkpoint state of a run directory or checkpoint."""
    state, _ = load_checkpoint(path)
    model = _model_from_spec(state["model_spec"])
    model.load_state_dict(state["model"])
    model.to(device).eval()
    tok_path = Path(path) / "tokenizer.json" if Path(path).is_dir() else None
    if tok_path is not None and tok_path.exists():
        tok = load_tokenizer(tok_path)
    else:
        tok = _tokenizer_from_doc(state["tokenizer"])
    return model, tok, state


def _tokenizer_from_doc(doc: str) -> Tokenizer:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "tokenizer.json"
        p.write_text(doc)
        return load_tokenizer(p)


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_stream(
    model: nn.Module,
    tokens: np.ndarray,
    seq_len: int,
    *,
    batch_size: int = 16,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean next-token NLL (nats) and perplexity of ``model`` on a held-out token stream.

    The NLL is the cross-entropy of the logits alone (auxiliary losses excluded), so
    ``ppl = exp(NLL)`` is comparable between architectures sharing a tokenizer.

    The stream is cut into consecutive windows of ``seq_len`` predictions
    (:func:`bkmodel.data.eval_windows`); every token but the first is scored exactly once.
    Returns ``{"loss", "ppl", "tokens", "tokens_per_s"}``. O(n_tokens) forward passes' work.
    """
    was_training = model.training
    model.eval()
    starts = eval_windows(len(tokens), seq_len, max_tokens)
    device = torch.device(device)
    total, count = 0.0, 0
    t0 = time.perf_counter()
    for i in range(0, len(starts), batch_size):
        rows = torch.from_numpy(batch_from_stream(tokens, starts[i: i + batch_size], seq_len))
        rows = rows.to(device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            logits, _ = model(rows[:, :-1])
        # pure next-token cross-entropy from the logits (a model's loss may add MoE terms)
        targets = rows[:, 1:]
        total += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                       targets.reshape(-1), reduction="sum"))
        count += targets.numel()
    dt = time.perf_counter() - t0
    model.train(was_training)
    mean = total / count
    return {"loss": mean, "ppl": math.exp(min(mean, 700.0)), "tokens": count,
            "tokens_per_s": count / dt if dt > 0 else float("inf")}


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------


def _prepare_data(cfg: TrainConfig, cache_dir: Path | None):
    train_docs = load_split("train", cfg.corpus)
    tok = get_tokenizer(cfg.tokenizer, train_docs, cfg.vocab_size, cache_dir=cache_dir)
    train_tokens = encode_documents(tok, train_docs)
    val_tokens = encode_documents(tok, load_split("validation", cfg.corpus))
    return tok, train_tokens, val_tokens


def _check_resume_config(saved: dict[str, Any], cfg: TrainConfig) -> None:
    diffs = [k for k, v in cfg.to_dict().items()
             if k not in RESUMABLE_CHANGES and saved.get(k) != v]
    if diffs:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {getattr(cfg, k)!r}"
                           for k in diffs)
        raise CheckpointError(f"--resume with a different configuration ({detail}); "
                              "resume with the same settings or start a new --out directory")


class _Metrics:
    """Append-only JSON-lines log (rank 0), truncated to a step on resume/rollback."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate(self, step: int, keep_events: bool) -> None:
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a torn last line after a kill
                continue
            if row.get("step", 0) <= step or (keep_events and "event" in row):
                kept.append(json.dumps(row))
        self.path.write_text("".join(k + "\n" for k in kept))

    def write(self, row: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


class _GraphedStep:
    """Forward + backward of a training step replayed from a CUDA graph (``cuda_graph``).

    Captured at the first step (after three warm-up passes on a side stream): the batch is
    copied into a static input, the graph replays the forward (bf16 autocast without its
    weight cache) and the backward, whose gradients land in static tensors that are
    re-attached to the parameters after every replay (the trainer may set them to None).
    The guards run in deferred mode inside the graph (:meth:`ScanGuard.consume_deferred`
    reads all layers' counters with one synchronisation after the replay); a violation
    under ``recompute_fp64`` makes :meth:`run` return False and the trainer redoes the step
    eagerly with immediate guards. The optimizer step, clipping, loss-spike and non-finite
    checks stay outside the graph, unchanged. One GPU only (no DDP).
    """

    def __init__(self, model: nn.Module, amp_dtype: torch.dtype | None, vocab_size: int) -> None:
        self.model = model
        self.amp_dtype = amp_dtype
        self.vocab_size = vocab_size
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None
        self.grads: list[tuple[nn.Parameter, torch.Tensor]] = []
        self.pending: list = []
        self.aux = None
        self.guard = getattr(model, "guard", None)

    def _fwd_bwd(self) -> torch.Tensor:
        assert self.static is not None
        with torch.autocast("cuda", dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None, cache_enabled=False):
            _, loss = self.model(self.static[:, :-1], self.static[:, 1:])
        loss.backward()
        return loss

    def _capture(self, batch: torch.Tensor) -> None:
        self.static = batch.clone()
        params = [p for p in self.model.parameters() if p.requires_grad]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # kernel compilation, allocator, autograd warm-up
                if self.guard is not None:
                    self.guard.defer(True)
                for p in params:
                    p.grad = None
                self._fwd_bwd()
        torch.cuda.current_stream().wait_stream(side)
        for p in params:
            p.grad = None
        if self.guard is not None:
            self.guard.defer(True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.loss = self._fwd_bwd()
        self.pending = list(self.guard.deferred) if self.guard is not None else []
        if self.guard is not None:
            self.guard.defer(False)
        self.grads = [(p, p.grad) for p in params if p.grad is not None]
        self.aux = getattr(self.model, "last_aux", None)  # statistics over the static tensors
        self.graph = graph

    def run(self, batch: torch.Tensor) -> bool:
        """Replay one forward + backward on ``batch`` (on the device); True when done, False
        when a ``recompute_fp64`` guard asks for an eager redo. May raise GuardError."""
        if self.graph is None:
            self._capture(batch)
        assert self.static is not None and self.graph is not None
        self.static.copy_(batch)
        self.graph.replay()
        for p, g in self.grads:
            p.grad = g
        if self.aux is not None:  # an eager forward (evaluation) may have replaced it
            self.model.last_aux = self.aux
            if hasattr(self.aux, "refresh"):
                self.aux.refresh()
        if self.guard is None or not self.pending:
            return True
        self.guard.skip_requested = False
        self.guard.deferred = list(self.pending)  # deferred mode, with this replay's counters
        try:
            bad = self.guard.consume_deferred()
        finally:
            self.guard.defer(False)
        return not bad


def _params_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _guard_counts(model: nn.Module) -> dict[str, float]:
    report = getattr(model, "guard_report", None)
    if report is None:
        return {}
    try:
        rep = report()
    except Exception as exc:  # noqa: BLE001 - a broken report must not stop training
        return {"guard_report_error": str(exc)}  # type: ignore[dict-item]
    out: dict[str, float] = {}

    def flatten(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                flatten(f"{prefix}{k}." if not prefix else f"{prefix}{k}.", v)
        elif isinstance(obj, (int, float, bool)) or (
            isinstance(obj, torch.Tensor) and obj.numel() == 1
        ):
            out[prefix.rstrip(".")] = float(obj)

    flatten("", rep if isinstance(rep, dict) else {})
    return out


def _aux_stats(model: nn.Module) -> dict[str, float]:
    aux = getattr(model, "last_aux", None) or {}
    out = {}
    for k, v in aux.items():
        if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1):
            out[k] = float(v)
    return out


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

    Raises
    ------
    TrainingDiverged
        If ``max_rollbacks`` rollbacks did not restore stable training.
    CheckpointError
        If ``resume`` finds no usable checkpoint or a different configuration.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    cfg = config
    out = Path(out_dir)
    dist = _Dist(cfg.device)
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    old_handlers = {}
    _STOP.clear()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (preemption) and a first Ctrl-C stop the run at the next step boundary,
        # where the state is consistent: checkpoint, then exit. A second Ctrl-C is immediate.
        for sig in (signal.SIGTERM, signal.SIGINT):
            old_handlers[sig] = signal.signal(sig, _request_stop)
    try:
        return _train(cfg, out, dist, resume, fault, progress and dist.is_main,
                      Path(cache_dir) if cache_dir else None,
                      say if dist.is_main else (lambda msg: None))
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        dist.close()


_STOP: set[int] = set()


def _request_stop(signum, frame) -> None:
    if signum == signal.SIGINT and signum in _STOP:
        raise KeyboardInterrupt
    _STOP.add(signum)


def _train(cfg, out, dist, resume, fault, progress, cache_dir, say) -> dict[str, Any]:
    from tqdm import tqdm

    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    ckpt_path = out / CKPT_NAME
    metrics = _Metrics(out / "metrics.jsonl", dist.is_main)

    saved_state = None
    if resume:
        saved_state, used = load_checkpoint(out)
        _check_resume_config(saved_state["train_config"], cfg)
        say(f"resuming from {used} at step {saved_state['step']}")
    elif dist.is_main and ckpt_path.exists():
        raise CheckpointError(f"{out} already holds a run ({ckpt_path}); pass --resume to "
                              "continue it or choose another --out directory")

    tok, train_tokens, val_tokens = _prepare_data(cfg, cache_dir)
    if dist.is_main:
        save_tokenizer(tok, out / "tokenizer.json")
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    tok_doc = (out / "tokenizer.json").read_text() if dist.is_main else ""

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)  # noqa: NPY002 - global RNG seeded for reproducibility
    random.seed(cfg.seed)
    model = build_model(cfg, tok.vocab_size).to(dist.device)
    raw = model
    n_params = raw.num_params()
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(raw, device_ids=[dist.device.index] if dist.device.type == "cuda" else None,
                    find_unused_parameters=cfg.model == "bk")
    decay = [p for p in raw.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in raw.parameters() if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=lr_at(0, cfg), betas=(cfg.beta1, cfg.beta2),
    )
    use_bf16 = cfg.precision == "bf16" or (
        cfg.precision == "auto" and dist.device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    amp_dtype = torch.bfloat16 if use_bf16 else None
    sampler = ChunkSampler(len(train_tokens), cfg.seq_len, cfg.seed)
    rows = rank_rows(cfg.batch_size, dist.rank, dist.world)

    # mutable training state (everything below goes into a checkpoint)
    st: dict[str, Any] = {"step": 0, "skip": 0, "window": [], "gn_window": [], "tokens": 0,
                          "counters": {"nonfinite_skips": 0, "spikes": 0, "rollbacks": 0,
                                       "grad_norm_flags": 0, "guard_skips": 0,
                                       "guard_errors": 0},
                          "guard_offset": {}}

    def snapshot() -> dict[str, Any]:
        return {"format": 1, "step": st["step"], "skip": st["skip"],
                "window": list(st["window"]), "gn_window": list(st["gn_window"]),
                "tokens": st["tokens"], "counters": dict(st["counters"]),
                "guard_totals": guard_totals(),
                "model": raw.state_dict(), "optimizer": opt.state_dict(),
                "rng": _rng_state(), "train_config": cfg.to_dict(),
                "model_spec": _model_spec(raw), "tokenizer": tok_doc,
                "n_params": n_params}

    def restore(state: dict[str, Any], *, keep_counters: bool) -> None:
        raw.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        st["step"], st["tokens"] = state["step"], state["tokens"]
        st["window"], st["gn_window"] = list(state["window"]), list(state["gn_window"])
        if not keep_counters:
            st["skip"] = state["skip"]
            st["counters"] = dict(state["counters"])
            # the model's guard counters live outside its state_dict: carry them as an offset
            now = _guard_counts(raw)
            st["guard_offset"] = {k: v - now.get(k, 0.0)
                                  for k, v in state.get("guard_totals", {}).items()}

    def guard_totals() -> dict[str, float]:
        counts = _guard_counts(raw)
        off = st["guard_offset"]
        return {k: counts.get(k, 0.0) + off.get(k, 0.0) for k in set(counts) | set(off)}

    def save() -> None:
        if dist.is_main:
            _write_checkpoint(ckpt_path, snapshot())
        st["saved_step"] = st["step"]
        dist.barrier()

    if saved_state is not None:
        restore(saved_state, keep_counters=False)
        st["saved_step"] = st["step"]
        metrics.truncate(st["step"], keep_events=False)
    else:
        if dist.is_main and metrics.path.exists():
            metrics.path.unlink()
        save()  # step 0: there is always a good checkpoint to roll back to
        metrics.write({"event": "start", "step": 0, "params": n_params,
                       "model": cfg.model, "world_size": dist.world,
                       "device": str(dist.device), "amp": str(amp_dtype)})
    say(f"{cfg.model}: {n_params:,} parameters, {len(train_tokens):,} training tokens, "
        f"vocab {tok.vocab_size}, world size {dist.world}, device {dist.device}, "
        f"{'bf16 autocast' if amp_dtype else 'fp32'}")

    def rollback(reason: str, bad_step: int) -> None:
        st["counters"]["rollbacks"] += 1
        if st["counters"]["rollbacks"] > cfg.max_rollbacks:
            raise TrainingDiverged(f"training diverged: {reason} at step {bad_step} after "
                                   f"{cfg.max_rollbacks} rollbacks (see {metrics.path})")
        dist.barrier()
        state, used = load_checkpoint(out)
        counters, skip = dict(st["counters"]), st["skip"]
        restore(state, keep_counters=True)
        st["counters"] = counters
        st["skip"] = skip + bad_step + 1 - state["step"]  # resume past the offending batch
        metrics.truncate(st["step"], keep_events=True)
        metrics.write({"event": "rollback", "step": st["step"], "from_step": bad_step,
                       "reason": reason, "checkpoint": used.name, "skip": st["skip"]})
        say(f"rollback: {reason} at step {bad_step}; back to step {st['step']} ({used.name})")

    gstep: _GraphedStep | None = None
    if cfg.cuda_graph:
        if dist.device.type != "cuda" or dist.world > 1:
            say("cuda_graph: needs one CUDA device (no DDP); training eagerly")
        else:
            gstep = _GraphedStep(raw, amp_dtype, tok.vocab_size)
    kill_at = os.environ.get("BK_FAULT_KILL_AT_STEP")
    kill_at = int(kill_at) if kill_at is not None else None
    bar = tqdm(total=cfg.max_steps, initial=st["step"], disable=not progress,
               desc=f"train {cfg.model}", unit="step", dynamic_ncols=True)
    tok_per_step = cfg.batch_size * cfg.seq_len
    consecutive_bad = 0
    # throughput: optimizer steps only (data, forward, backward, update); evaluation,
    # checkpoints and the first `warm` steps of this process (allocator, kernel compilation)
    # are excluded. Logged rows carry the throughput of the last log interval.
    warm = min(5, max(0, (cfg.max_steps - st["step"]) // 2))
    steps_seen = 0
    t_train, tokens_timed = 0.0, 0
    t_win, tokens_win = 0.0, 0
    last_eval: dict[str, float] | None = None
    try:
        while st["step"] < cfg.max_steps:
            if dist.any(bool(_STOP)):  # all ranks stop at the same step
                raise KeyboardInterrupt(f"signal {sorted(_STOP)}")
            step = st["step"]
            t0 = time.perf_counter()
            starts = sampler.starts((step + st["skip"]) * cfg.batch_size, cfg.batch_size)[rows]
            batch = torch.from_numpy(batch_from_stream(train_tokens, starts, cfg.seq_len))
            if gstep is not None:  # the graph cannot read values: check ids on the host
                if int(batch.min()) < 0 or int(batch.max()) >= tok.vocab_size:
                    raise ValueError(f"batch ids outside [0, {tok.vocab_size})")
            batch = batch.to(dist.device)
            if fault is not None:
                fault(step, raw, batch)
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            raw.train()
            guard_error: Exception | None = None
            backward_done = False
            try:
                if gstep is not None:
                    backward_done = gstep.run(batch)
                    loss = gstep.loss
                    if not backward_done:  # recompute_fp64 violation: redo eagerly
                        opt.zero_grad(set_to_none=True)
                if not backward_done:
                    with torch.autocast(dist.device.type, dtype=amp_dtype or torch.float32,
                                        enabled=amp_dtype is not None):
                        _, loss = model(batch[:, :-1], batch[:, 1:])
            except _GuardError as exc:  # a certificate the configured action could not repair
                guard_error, loss = exc, None
            loss_val, gnorm, reason = math.nan, math.nan, None
            if dist.any(guard_error is not None):  # every rank skips the backward together
                reason = "guard_errors"
                say(f"step {step + 1}: {guard_error or 'guard error on another rank'}")
            else:
                if not backward_done:
                    loss.backward()
                loss_val = float(dist.mean(loss.detach().float()))
                gnorm = float(torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip))
                aux = getattr(raw, "last_aux", None) or {}
                if dist.any(bool(aux.get("skip_step"))):
                    reason = "guard_skips"
                if not (math.isfinite(loss_val) and math.isfinite(gnorm)):
                    reason = "nonfinite_skips"
            if reason is not None:
                opt.zero_grad(set_to_none=True)
                st["counters"][reason] = st["counters"].get(reason, 0) + 1
                consecutive_bad += 1
                metrics.write({"event": "skip", "step": step + 1, "loss": loss_val,
                               "grad_norm": gnorm, "reason": reason})
                say(f"step {step + 1}: skipped ({reason}: loss={loss_val}, grad_norm={gnorm})")
                weights_ok = _params_finite(raw)
                if not weights_ok or consecutive_bad >= cfg.max_consecutive_nonfinite:
                    rollback("non-finite weights" if not weights_ok else
                             f"{consecutive_bad} bad steps in a row", step)
                    consecutive_bad = 0
                    continue
                st["step"] += 1  # the batch is consumed, no update is made
                bar.update(1)
                continue
            window = st["window"]
            if (len(window) >= cfg.spike_window
                    and loss_val > cfg.spike_factor * statistics.median(window)):
                opt.zero_grad(set_to_none=True)
                st["counters"]["spikes"] += 1
                metrics.write({"event": "spike", "step": step + 1, "loss": loss_val,
                               "median": statistics.median(window)})
                rollback(f"loss spike {loss_val:.3f} > {cfg.spike_factor} x median "
                         f"{statistics.median(window):.3f}", step)
                consecutive_bad = 0
                continue
            consecutive_bad = 0
            opt.step()
            opt.zero_grad(set_to_none=True)
            window.append(loss_val)
            del window[: -cfg.spike_window]
            gn_window = st["gn_window"]
            if len(gn_window) >= cfg.spike_window and gnorm > 10 * statistics.median(gn_window):
                st["counters"]["grad_norm_flags"] += 1
                metrics.write({"event": "grad_norm_spike", "step": step + 1,
                               "grad_norm": gnorm, "median": statistics.median(gn_window)})
            gn_window.append(gnorm)
            del gn_window[: -cfg.spike_window]
            st["step"] += 1
            st["tokens"] += tok_per_step
            if dist.device.type == "cuda":
                torch.cuda.synchronize()
            dt_step = time.perf_counter() - t0
            steps_seen += 1
            if steps_seen > warm:
                t_train += dt_step
                tokens_timed += tok_per_step
            t_win += dt_step
            tokens_win += tok_per_step
            tps = tokens_win / t_win if t_win > 0 else 0.0
            step = st["step"]
            bar.update(1)
            bar.set_postfix(loss=f"{loss_val:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                row = {"step": step, "loss": loss_val, "lr": lr, "grad_norm": gnorm,
                       "tokens": st["tokens"], "tokens_per_s": tps}
                t_win, tokens_win = 0.0, 0
                row.update({f"aux.{k}": v for k, v in _aux_stats(raw).items()})
                row.update({f"guard.{k}": v for k, v in sorted(guard_totals().items())})
                row.update(st["counters"])
                metrics.write(row)
            if dist.is_main and (step % cfg.eval_every == 0 or step == cfg.max_steps):
                last_eval = evaluate_stream(raw, val_tokens, cfg.seq_len,
                                            batch_size=cfg.batch_size,
                                            max_tokens=cfg.eval_tokens, device=dist.device,
                                            autocast_dtype=amp_dtype)
                metrics.write({"step": step, "val_loss": last_eval["loss"],
                               "val_ppl": last_eval["ppl"]})
                bar.write(f"step {step}: train loss {loss_val:.4f}, val loss "
                          f"{last_eval['loss']:.4f} (ppl {last_eval['ppl']:.2f}), "
                          f"{tps:,.0f} tok/s")
            if step % cfg.ckpt_every == 0:
                if not _params_finite(raw):
                    rollback("non-finite weights at checkpoint time", step - 1)
                    continue
                save()
            if kill_at is not None and step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
    except KeyboardInterrupt:
        bar.close()
        if _params_finite(raw):
            save()
            say(f"interrupted: checkpoint written at step {st['step']}; continue with --resume")
        raise
    bar.close()
    if st.get("saved_step") != st["step"] and _params_finite(raw):
        save()
    summary: dict[str, Any] = {}
    if dist.is_main:
        final = evaluate_stream(raw, val_tokens, cfg.seq_len, batch_size=cfg.batch_size,
                                device=dist.device, autocast_dtype=amp_dtype)
        raw.save_pretrained(out / "model")
        tps = tokens_timed / t_train if t_train > 0 else (tokens_win / t_win if t_win else None)
        summary = {
            "model": cfg.model, "preset": cfg.preset, "params": n_params,
            "steps": st["step"], "tokens": st["tokens"], "train_tokens_per_s": tps,
            "val_loss": final["loss"], "val_ppl": final["ppl"], "val_tokens": final["tokens"],
            "eval_tokens_per_s": final["tokens_per_s"], "counters": st["counters"],
            "guard": guard_totals(),
            "world_size": dist.world, "device": str(dist.device),
            "precision": "bf16" if amp_dtype else "fp32",
        }
        metrics.write({"event": "end", "step": st["step"], **{k: summary[k] for k in
                                                               ("val_loss", "val_ppl")}})
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        try:
            plot_metrics(out / "metrics.jsonl", out / "curves.png")
        except Exception as exc:  # noqa: BLE001 - a plot must never fail a finished run
            say(f"warning: could not plot the curves: {exc}")
    dist.barrier()
    return summary


# ---------------------------------------------------------------------------------------------
# plotting
# ---------------------------------------------------------------------------------------------


def plot_metrics(metrics_path: Path | str, png_path: Path | str) -> Path:
    """Plot train/validation loss, learning rate, gradient norm and tokens/s to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _Metrics(Path(metrics_path), False).rows()
    tr = [r for r in rows if "loss" in r and "event" not in r]
    ev = [r for r in rows if "val_loss" in r and "event" not in r]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    ax.plot([r["step"] for r in tr], [r["loss"] for r in tr], label="train")
    ax.plot([r["step"] for r in ev], [r["val_loss"] for r in ev], "o-", label="validation")
    for r in rows:
        if r.get("event") in ("rollback", "skip", "spike"):
            ax.axvline(r["step"], color="red", alpha=0.3, lw=0.8)
    ax.set(xlabel="step", ylabel="loss (nats/token)", title="loss")
    ax.legend()
    for ax, key, title in ((axes[0, 1], "lr", "learning rate"),
                           (axes[1, 0], "grad_norm", "gradient norm (before clipping)"),
                           (axes[1, 1], "tokens_per_s", "training throughput (tokens/s)")):
        ax.plot([r["step"] for r in tr], [r[key] for r in tr])
        ax.set(xlabel="step", title=title)
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path


# ---------------------------------------------------------------------------------------------
# the demo and the CLI
# ---------------------------------------------------------------------------------------------


def tiny_demo(out_dir: Path | str, **overrides: Any) -> dict[str, Any]:
    """Train the ``tiny`` preset (ResNet-BK, about a minute on a 2-core CPU) into ``out_dir``.

    Returns ``{"val_ppl", "val_loss", "sample", "params", "train_tokens_per_s", "out"}``; the
    validation perplexity is measured on the held-out validation works.
    """
    cfg = TrainConfig.from_preset("tiny", **overrides)
    out = Path(out_dir)
    if (out / CKPT_NAME).exists():  # a fresh run every time: the demo is reproducible
        for name in (CKPT_NAME, CKPT_PREV, "metrics.jsonl", "summary.json"):
            (out / name).unlink(missing_ok=True)
    summary = train(cfg, out)
    model, tok, _ = load_run(out)
    from bkmodel.generation import generate_text

    sample = generate_text(model, tok, "ROMEO.\n", max_new_tokens=100)
    return {"val_ppl": summary["val_ppl"], "val_loss": summary["val_loss"], "sample": sample,
            "params": summary["params"], "train_tokens_per_s": summary["train_tokens_per_s"],
            "out": str(out)}


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


_parse_bool.__name__ = "bool"


def _override_fields() -> list[tuple[str, type]]:
    skip = {"preset", "model", "bk_options"}
    out = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        typ = {"int": int, "float": float, "str": str, "int | None": int,
               "bool": _parse_bool}.get(str(f.type), str)
        out.append((f.name, typ))
    return out


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
    parser.add_argument("--bk-option", action="append", default=[], metavar="KEY=JSON",
                        help="extra ModelConfig field for ResNet-BK (repeatable), e.g. "
                             "--bk-option n_channels=4")
    group = parser.add_argument_group(
        "overrides of the preset", "fields of bkmodel.presets.TrainConfig; the preset's value "
        "when omitted (see bkmodel/presets.py)")
    for name, typ in _override_fields():
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=typ, default=None,
                           metavar=typ.__name__.upper())


def run(args: argparse.Namespace) -> int:
    overrides = {name: getattr(args, name) for name, _ in _override_fields()
                 if getattr(args, name, None) is not None}
    overrides["model"] = args.model
    try:
        if args.bk_option:
            overrides["bk_options"] = dict(get_bk_options(args.bk_option))
        cfg = TrainConfig.from_preset(args.preset, **overrides)
        if cfg.model == "bk":  # validate the model configuration before any work
            _bk_config(cfg, cfg.vocab_size)
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
              f"(loss {summary['val_loss']:.4f}), {summary['train_tokens_per_s'] or 0:,.0f} "
              f"train tokens/s -> {out}")
    return 0


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
