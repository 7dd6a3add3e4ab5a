"""ONNX export of the inference forward (``input_ids -> logits``), checked with onnxruntime.

Optional: ``pip install resnet-bk[export]`` (onnx, onnxscript, onnxruntime). Uses the dynamo
exporter (``torch.onnx.export(..., dynamo=True)``) at a fixed example shape.

Status: the Transformer baseline exports (onnxruntime agrees with eager to ~1e-7). ResNet-BK
does not yet: under ``torch.export`` the BK scan is the custom op ``bkmodel::scan_torch``
(``bkmodel/ops/bk_scan/custom_op.py``), which needs an ONNX translation (a real-arithmetic
``Scan``/unrolled recurrence in onnxscript, passed as ``custom_translation_table``), and the
naive backend's value checks read tensors on the host. :func:`export_onnx` refuses it with
that message rather than writing a wrong graph.

The token-id value check (:func:`bkmodel.lm_base.check_ids`, a host read that ``torch.export``
cannot trace) is replaced by a shape-only check for the duration of the export; the ONNX
graph itself does not check ids (onnxruntime's Gather rejects out-of-range ids).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
import torch.nn as nn

from bkmodel import lm_base

__all__ = ["check_onnx", "export_onnx"]


class _Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids)
        return out[0] if isinstance(out, tuple) else out  # (B, T, V)


@contextlib.contextmanager
def _shape_only_id_check():
    orig = lm_base.check_ids

    def check(ids, vocab_size, max_len=None, name="input_ids", **kw):
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
            raise ValueError(f"{name} must be a (B, T) integer tensor")

    lm_base.check_ids = check
    try:
        yield
    finally:
        lm_base.check_ids = orig


def export_onnx(model: nn.Module, path: str | os.PathLike, example_ids: torch.Tensor) -> Path:
    """Write ``model``'s ``input_ids -> logits`` forward to ``path`` (ONNX, eval mode)."""
    from bkmodel.model import LanguageModel

    if isinstance(model, LanguageModel):
        raise NotImplementedError(
            "ONNX export of ResNet-BK needs an ONNX translation of the custom op "
            "bkmodel::scan_torch (not written yet); the Transformer baseline exports")
    model.eval()
    with _shape_only_id_check(), torch.no_grad():
        prog = torch.onnx.export(_Logits(model), (example_ids,), dynamo=True, verbose=False)
    path = Path(path)
    prog.save(str(path))
    return path


def check_onnx(path: str | os.PathLike, model: nn.Module, input_ids: torch.Tensor) -> float:
    """Max |onnxruntime logits - eager logits| on ``input_ids``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: input_ids.numpy()})[0]
    with torch.no_grad():
        ref = _Logits(model.eval())(input_ids).numpy()
    return float(abs(got - ref).max())
