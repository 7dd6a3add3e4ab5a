"""ONNX export of ResNet-BK's inference path (``bkmodel/export.py``) against eager PyTorch.

Both graphs (``forward.onnx``: prompt -> logits and state; ``decode.onnx``: token and state ->
logits and state) are written through ``bk export RUN --format onnx`` and run with
onnxruntime on random ids of shapes other than the export example's (B and T are symbolic).

Tolerances. The recurrence runs in float64 in both (complex128 eager, (Re, Im) float64 in the
graph), so the scan itself agrees to a few float64 ulp (checked alone, 1e-13 relative). The
rest is float32: the same Linear/LayerNorm/Conv ops computed by onnxruntime's kernels in
another summation order, a few float32 ulp (~1e-7 relative) per op, through 2 layers and
the chain's condition (|dg/dv| = |g|^2 <= 1/eta^2). Logits are compared at 1e-5 relative
to their largest entry and the states at 1e-5 relative (~100 float32 ulp); measured
differences are ~1e-7.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript", reason="onnxscript not installed (pip install .[export])")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install .[export])")

from bkmodel import export as E  # noqa: E402
from bkmodel.checkpoint import model_spec, write_checkpoint  # noqa: E402
from bkmodel.cli import main  # noqa: E402
from bkmodel.model import LanguageModel  # noqa: E402
from bkmodel.ops.bk_scan import bk_scan_naive  # noqa: E402
from bkmodel.ops.bk_scan.export_scan import bk_scan_real, bk_step_real  # noqa: E402
from bkmodel.ops.bk_scan.torch_scan import bk_step  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V = 40
TOL = 1e-5


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-300))


class TestScanReal:
    """The exported recurrence (``export_scan.py``) against the naive complex loop."""

    @pytest.mark.parametrize("per_token", [False, True], ids=["per_channel", "per_token"])
    def test_scan_matches_naive(self, per_token):
        g = torch.Generator().manual_seed(0)
        B, N, C = 2, 13, 3
        shape = (B, N, C) if per_token else (C,)
        d = torch.float64
        v, lam = torch.randn(B, N, C, dtype=d, generator=g), torch.randn(C, dtype=d, generator=g)
        eta = 0.05 + torch.rand(shape, dtype=d, generator=g)
        b = 0.5 + torch.rand(shape, dtype=d, generator=g)
        g0 = torch.complex(torch.randn(B, C, dtype=d, generator=g),
                           torch.rand(B, C, dtype=d, generator=g))
        for init in (None, g0):
            ref = bk_scan_naive(v, lam, eta, b, init)
            got = bk_scan_real(v, lam, eta, b, *(() if init is None else (g0.real, g0.imag)))
            for r, o in zip(ref, got, strict=True):
                assert _rel(o.numpy(), r.numpy()) < 1e-13

    def test_step_matches_bk_step(self):
        g = torch.Generator().manual_seed(1)
        v, lam = torch.randn(2, 3, generator=g), torch.randn(3, generator=g)
        eta, b = 0.1 + torch.rand(2, 3, generator=g), 0.5 + torch.rand(2, 3, generator=g)
        prev = torch.complex(torch.randn(2, 3, dtype=torch.float64, generator=g),
                             torch.rand(2, 3, dtype=torch.float64, generator=g))
        ref = bk_step(v, lam, eta, b, prev)
        n_re, n_im = bk_step_real(v, lam, eta, b, prev.real, prev.imag)
        assert _rel(n_re.numpy(), ref.real.numpy()) < 1e-14
        assert _rel(n_im.numpy(), ref.imag.numpy()) < 1e-14
        z = torch.zeros(2, 3, dtype=torch.float64)  # g_0 = 0: 1/alpha (an ulp from torch's
        first = bk_step(v, lam, eta, b, None)       # complex reciprocal)
        got = torch.complex(*bk_step_real(v, lam, eta, b, z, z))
        assert float((got - first).abs().max() / first.abs().max()) < 4 * 2.0**-52


def _write_run(path, model) -> None:
    from bkmodel.tokenizer import ByteTokenizer, save_tokenizer

    path.mkdir(parents=True)
    save_tokenizer(ByteTokenizer(), path / "tokenizer.json")
    write_checkpoint(path / "checkpoint.pt", {"model_spec": model_spec(model),
                                              "model": model.state_dict(), "tokenizer": ""})


CONFIGS = {
    "classic-moe": dict(layer="classic", ffn="moe", num_experts=2),
    "selective-conv4": dict(layer="selective", ffn="mlp", conv_size=4),
    "selective-noconv": dict(layer="selective", ffn="mlp", conv_size=0),
}


@pytest.fixture(scope="module", params=[
    "classic-moe", "selective-conv4", pytest.param("selective-noconv", marks=pytest.mark.slow)])
def exported(request, tmp_path_factory):
    """(eager model, OnnxBK) of a tiny 2-layer model exported by ``bk export``."""
    torch.manual_seed(0)
    m = LanguageModel(vocab_size=V, d_model=16, n_layers=2, n_seq=16, n_channels=3,
                      **CONFIGS[request.param]).eval()
    run = tmp_path_factory.mktemp("run") / request.param
    _write_run(run, m)
    assert main(["export", str(run), "--format", "onnx"]) == 0
    return m, E.OnnxBK.from_directory(run / "onnx")


def _ids(B: int, T: int, seed: int) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


class TestExportedBK:
    @pytest.mark.parametrize("shape", [(3, 13), (1, 1)], ids=["B3-T13", "B1-T1"])
    def test_forward_matches_eager(self, exported, shape):
        m, sess = exported
        ids = _ids(*shape, seed=shape[1])
        with torch.no_grad():
            ref_logits, _, ref_state = m(ids, return_state=True)
        logits, state = sess.prefill(ids.numpy())
        assert _rel(logits, ref_logits.numpy()) < TOL
        ref = E.state_to_onnx(m, ref_state, shape[0])
        assert sorted(state) == sorted(ref) == sorted(E.state_names(m))
        for n in ref:
            assert state[n].dtype == ref[n].dtype, n
            assert _rel(state[n], ref[n]) < TOL, n

    def test_decode_matches_eager(self, exported):
        """Six steps from the prompt's state: logits and the float64 state each step."""
        m, sess = exported
        ids = _ids(2, 7, seed=3)
        with torch.no_grad():
            states = m._prefill(ids)
            tok = states.pop("logits").argmax(-1)
            _, st = sess.prefill(ids.numpy())
            for _ in range(6):
                ref_logits = m._decode_step(tok, states)
                logits, st = sess.step(tok.numpy(), st)
                assert _rel(logits, ref_logits.numpy()) < TOL
                ref = E.state_to_onnx(m, [states[str(i)] for i in range(2)], 2)
                for n in ref:
                    assert _rel(st[n], ref[n]) < TOL, n
                tok = ref_logits.argmax(-1)

    def test_greedy_generate_equals_eager(self, exported):
        m, sess = exported
        ids = _ids(2, 5, seed=4)
        assert np.array_equal(sess.generate(ids.numpy(), 8), m.generate(ids, 8, temperature=0))

    def test_state_round_trip(self, exported):
        m, sess = exported
        _, st = sess.prefill(_ids(2, 4, seed=5).numpy())
        back = E.state_to_onnx(m, E.state_from_onnx(m, st), 2)
        assert all(np.array_equal(back[n], st[n]) for n in st)

    def test_bad_state_is_refused(self, exported):
        m, sess = exported
        _, st = sess.prefill(_ids(2, 4, seed=6).numpy())
        tok = np.zeros(2, dtype=np.int64)
        name = E.state_names(m)[0]
        with pytest.raises(ValueError, match=rf"state\['{name}'\] must have shape \(2, 3\)"):
            sess.step(tok, {**st, name: st[name][:, :2]})
        with pytest.raises(ValueError, match="must be float64"):
            sess.step(tok, {**st, name: st[name].astype(np.float32)})
        with pytest.raises(ValueError, match="must have shape"):  # batch of another prompt
            sess.step(np.zeros(3, dtype=np.int64), st)
        with pytest.raises(ValueError, match="does not belong to this model"):
            sess.step(tok, {k: a for k, a in st.items() if not k.startswith("state.1.")})
        with pytest.raises(ValueError, match=r"state\[0\]"):  # eager state of the wrong shape
            E.state_to_onnx(m, [torch.zeros(2, 5, dtype=torch.complex128)] * 2, 2)


class TestErrors:
    def test_unknown_architecture(self, tmp_path):
        with pytest.raises(ValueError, match="unknown architecture Linear"):
            E.export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")

    def test_unsupported_layer(self, tmp_path, monkeypatch):
        monkeypatch.setattr(E, "EXPORT_LAYERS", ("selective",))
        m = LanguageModel(vocab_size=V, d_model=8, n_layers=1, n_seq=8, n_channels=2)
        with pytest.raises(ValueError, match="got layer='classic'"):
            E.export_onnx_decode(m, tmp_path / "x.onnx")

    def test_missing_run_and_files(self, tmp_path, capsys):
        assert main(["export", str(tmp_path / "nope"), "--format", "onnx"]) == 1
        assert "checkpoint missing" in capsys.readouterr().err
        (tmp_path / "forward.onnx").touch()
        with pytest.raises(FileNotFoundError, match="ONNX file missing: .*decode.onnx"):
            E.OnnxBK.from_directory(tmp_path)

    def test_unknown_format(self, tmp_path):
        with pytest.raises(ValueError, match="unknown export format 'tflite'"):
            E.export_run(tmp_path, tmp_path / "out", fmt="tflite")


@pytest.mark.slow
def test_bk_export_transformer_run(tmp_path):
    """``bk export`` of a Transformer run: forward.onnx only (no KV cache to step)."""
    import json

    from bkmodel.baseline import TransformerBaseline, TransformerConfig

    torch.manual_seed(0)
    m = TransformerBaseline(TransformerConfig(vocab_size=V, d_model=16, n_layers=1,
                                              max_seq_len=8, n_heads=2, d_ff=32))
    _write_run(tmp_path / "run", m)
    assert main(["export", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "onnx" / E.META_NAME).read_text())
    assert meta["architecture"] == "transformer" and "decode" not in meta
    assert meta["forward"]["max_abs_diff_logits"] < 1e-5
    with pytest.raises(ValueError, match="no KV cache"):
        E.export_onnx_decode(m, tmp_path / "d.onnx")
