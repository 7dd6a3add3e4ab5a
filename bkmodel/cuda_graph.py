"""CUDA-graph training steps (``TrainConfig.cuda_graph``, ``bk train --cuda-graph true``).

The forward + backward of a training step is captured once (after three warm-up passes) and
replayed from a CUDA graph, which removes the Python and kernel-launch overhead of the many
small kernels of a ResNet-BK step (``benchmarks/profile_train.py`` counts them). One GPU, no
DDP. The batch's ids are checked on the host before the copy into the graph's input (the
graph cannot read values); the certificate guards run in deferred mode and are read once per
step after the replay (:meth:`bkmodel.guards.ScanGuard.consume_deferred`): ``raise`` and
``skip_step`` act as in eager mode, a ``recompute_fp64`` violation makes the trainer redo the
step eagerly with immediate guards. Everything after the backward (loss and gradient-norm
checks, clipping, spikes, rollbacks, AdamW, checkpoints, evaluation) is the same as eager.
Measured speed-ups: ``README.md`` and ``benchmarks/results/`` (``train_throughput.py
--cuda-graph``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["GraphedStep"]


class GraphedStep:
    """Forward + backward of a training step replayed from a CUDA graph (``cuda_graph``).

    Captured at the first step (after three warm-up passes on a side stream): the batch is
    copied into a static input, the graph replays the forward (bf16 autocast without its
    weight cache) and the backward, whose gradients land in static tensors that are
    re-attached to the parameters after every replay (the trainer may set them to None).
    The guards run in deferred mode inside the graph
    (:meth:`bkmodel.guards.ScanGuard.consume_deferred` reads all layers' counters with one
    synchronisation after the replay); a violation under ``recompute_fp64`` makes :meth:`run`
    return False and the trainer redoes the step eagerly with immediate guards. The optimizer
    step, clipping, loss-spike and non-finite checks stay outside the graph, unchanged. One
    GPU only (no DDP).
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

    def check_ids(self, batch: torch.Tensor) -> None:
        """``ValueError`` unless every id of the host ``batch`` lies in ``[0, vocab_size)``
        (inside the graph the model's own check of the ids cannot run)."""
        if int(batch.min()) < 0 or int(batch.max()) >= self.vocab_size:
            raise ValueError(f"batch ids outside [0, {self.vocab_size})")

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
