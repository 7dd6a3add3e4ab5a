"""ONNX export (``bkmodel/export.py``) checked with onnxruntime against eager logits."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnxscript", reason="onnxscript not installed (pip install .[export])")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install .[export])")

from bkmodel.baseline import TransformerBaseline, TransformerConfig  # noqa: E402
from bkmodel.export import check_onnx, export_onnx  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_transformer_baseline_matches_onnxruntime(tmp_path):
    torch.manual_seed(0)
    m = TransformerBaseline(TransformerConfig(vocab_size=40, d_model=16, n_layers=1,
                                              max_seq_len=16, n_heads=2, d_ff=32))
    ids = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(1))
    p = export_onnx(m, tmp_path / "base.onnx", ids)
    other = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(2))
    assert check_onnx(p, m, other) < 1e-5


def test_baseline_needs_example_ids_and_has_no_decode(tmp_path):
    """The baseline's graph has the example's shape; it has no cache to step (ResNet-BK's
    export: tests/bkmodel/test_export_bk.py)."""
    from bkmodel.export import export_onnx_decode

    m = TransformerBaseline(TransformerConfig(vocab_size=40, d_model=16, n_layers=1,
                                              max_seq_len=16, n_heads=2, d_ff=32))
    with pytest.raises(ValueError, match="example_ids"):
        export_onnx(m, tmp_path / "base.onnx")
    with pytest.raises(ValueError, match="no KV cache"):
        export_onnx_decode(m, tmp_path / "d.onnx")
