"""``torch.compile`` of the BK scan (custom ops, ``bkmodel/ops/bk_scan/custom_op.py``) and of
a tiny model: no graph break from the scan, outputs and gradients equal to eager.

The Triton ops run in the interpreter here (``TRITON_INTERPRET=1``, set by tests/conftest.py)
and are checked eagerly through ``torch.library.opcheck`` only on a tiny shape; compiling them
needs CUDA.
"""

from __future__ import annotations

import pytest
import torch

from bkmodel.model import LanguageModel
from bkmodel.ops.bk_scan import bk_scan
from bkmodel.ops.bk_scan.custom_op import _scan_torch, _scan_triton

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D = torch.float64


def _args(per_token: bool, seed: int = 0, B: int = 2, N: int = 7, C: int = 3):
    g = torch.Generator().manual_seed(seed)
    shape = (B, N, C) if per_token else (C,)
    v = torch.randn(B, N, C, dtype=D, generator=g)
    lam = torch.randn(C, dtype=D, generator=g)
    eta = 0.1 + torch.rand(shape, dtype=D, generator=g)
    b = 0.5 + torch.rand(shape, dtype=D, generator=g)
    g0 = torch.complex(torch.randn(B, C, dtype=D, generator=g),
                       torch.rand(B, C, dtype=D, generator=g))
    return [t.requires_grad_() for t in (v, lam, eta, b, g0)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


class TestScanOp:
    @pytest.mark.parametrize("per_token", [False, True], ids=["per_channel", "per_token"])
    def test_opcheck_torch(self, per_token):
        v, lam, eta, b, g0 = (t.detach() for t in _args(per_token))
        torch.library.opcheck(_scan_torch, (v, lam, eta, b, g0.real, g0.imag, 0))
        torch.library.opcheck(_scan_torch, (v, lam, eta, b, None, None, 3))

    def test_opcheck_triton_interpreter(self):
        pytest.importorskip("triton")
        import os

        if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
            pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1")
        v, lam, eta, b, g0 = (t.detach() for t in _args(True, N=5, C=2))
        if torch.cuda.is_available():
            v, lam, eta, b, g0 = (t.cuda() for t in (v, lam, eta, b, g0))
        torch.library.opcheck(_scan_triton, (v, lam, eta, b, g0.real, g0.imag, True, 1e-3),
                              test_utils=("test_schema", "test_autograd_registration",
                                          "test_faketensor"))

    @pytest.mark.parametrize("per_token", [False, True], ids=["per_channel", "per_token"])
    def test_fullgraph_matches_eager(self, per_token):
        """Forward, stats, final state and every gradient (initial state included)."""
        args = _args(per_token, seed=1)

        def f(v, lam, eta, b, g0):
            return bk_scan(v, lam, eta, b, backend="torch", initial_state=g0,
                           return_stats=True, return_final_state=True)

        torch._dynamo.reset()
        ref = f(*args)
        out = torch.compile(f, fullgraph=True, backend="aot_eager")(*args)
        for r, o in zip(ref, out, strict=True):
            assert torch.equal(r, o)
        loss = [(x[0].square().sum() + x[1].sin().sum() + x[3].abs().sum()) for x in (ref, out)]
        g_ref = torch.autograd.grad(loss[0], args)
        g_out = torch.autograd.grad(loss[1], args)
        for name, r, o in zip("v lam eta b g0".split(), g_ref, g_out, strict=True):
            assert _rel(o, r) < 1e-13, name

    def test_values_are_checked_at_run_time(self):
        v, lam, eta, b, _ = (t.detach() for t in _args(False))
        f = torch.compile(lambda v, lam, eta, b: bk_scan(v, lam, eta, b, backend="torch"),
                          fullgraph=True, backend="aot_eager")
        with pytest.raises(ValueError, match="eta must be > 0"):
            f(v, lam, -eta, b)


def _tiny(layer: str) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(vocab_size=32, d_model=16, n_layers=2, n_seq=12, n_channels=4,
                         layer=layer, scan_backend="torch", dropout=0.0,
                         ffn="moe", moe_dispatch="dense", num_experts=2, top_k=1,
                         guard={"enabled": False})


@pytest.mark.parametrize("layer", ["classic", "selective"])
def test_compiled_model_matches_eager(layer):
    """``torch.compile(model, fullgraph=True)`` (AOTAutograd; Inductor, slow to compile on
    CPU, is run on a layer below): no graph break at all, the token-id checks included
    (``lm_base.check_ids`` asserts in the graph while compiling); one forward graph and its
    one backward; logits, loss and all gradients equal eager's."""
    from torch._dynamo.testing import CompileCounterWithBackend

    m = _tiny(layer)
    ids = torch.randint(0, 32, (2, 12), generator=torch.Generator().manual_seed(2))
    torch._dynamo.reset()
    ex = torch._dynamo.explain(m)(ids, ids)
    assert ex.graph_break_count == 0, [r.reason for r in ex.break_reasons]
    assert ex.graph_count == 1

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    cm = torch.compile(m, backend=counter, fullgraph=True)
    logits_c, loss_c = cm(ids, ids)
    loss_c.backward()
    assert counter.frame_count == 1  # the forward: one frame, one graph (backward from it)
    grads_c = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    logits_e, loss_e = m(ids, ids)
    loss_e.backward()
    assert _rel(logits_c, logits_e) < 1e-5
    assert abs(float(loss_c) - float(loss_e)) < 1e-5
    for n, p in m.named_parameters():
        if p.grad is not None:
            assert _rel(grads_c[n], p.grad) < 1e-4, n


def test_compiled_id_check_still_raises():
    """Under compile the id range check is an in-graph assertion (a RuntimeError with the
    eager message when the graph runs); eager keeps the ValueError naming the id."""
    m = _tiny("classic")
    bad = torch.full((1, 4), 40, dtype=torch.long)
    with pytest.raises(ValueError, match="got id 40"):
        m(bad)
    torch._dynamo.reset()
    cm = torch.compile(m, backend="aot_eager", fullgraph=True)
    cm(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(RuntimeError, match=r"input_ids must lie in \[0, vocab_size=32\)"):
        cm(bad)


@pytest.mark.parametrize("layer", ["classic", "selective"])
def test_layer_fullgraph_forward_backward(layer):
    """A BK layer alone (no id check) compiles with ``fullgraph=True`` through Inductor,
    backward included."""
    m = _tiny(layer)
    bk = m.blocks[0].bk
    x = torch.randn(2, 12, 16, generator=torch.Generator().manual_seed(3), requires_grad=True)
    torch._dynamo.reset()
    fc = torch.compile(lambda x: bk(x)[0], fullgraph=True)
    yc = fc(x)
    (gc,) = torch.autograd.grad(yc.square().sum(), x)
    ye = bk(x)[0]
    (ge,) = torch.autograd.grad(ye.square().sum(), x)
    assert _rel(yc, ye) < 1e-5 and _rel(gc, ge) < 1e-4


@pytest.mark.parametrize("layer", ["selective", "green"])
def test_guarded_model_compiles_without_graph_break(layer):
    """With the runtime guard on (the trainer's default: every scan checked, residuals
    sampled), tracing would read counters on the host and create a ``Generator``: under
    compile the guard asserts in the graph instead (``ScanGuard._assert_in_graph``) — no graph
    break, the same logits as eager, and a violation still raises when the graph runs."""
    torch.manual_seed(0)
    m = LanguageModel(vocab_size=32, d_model=16, n_layers=2, n_seq=12, n_channels=2,
                      layer=layer, scan_backend="torch", dropout=0.0, ffn="mlp", ffn_mult=2,
                      conv_size=0, guard={"enabled": True, "sample_rate": 1.0})
    ids = torch.randint(0, 32, (2, 12), generator=torch.Generator().manual_seed(3))
    torch._dynamo.reset()
    ex = torch._dynamo.explain(m)(ids, ids)
    assert ex.graph_break_count == 0, [r.reason for r in ex.break_reasons]
    torch._dynamo.reset()
    cm = torch.compile(m, backend="aot_eager", fullgraph=True)
    logits_c, _ = cm(ids, ids)
    logits_e, _ = m(ids, ids)
    assert _rel(logits_c, logits_e) < 1e-5
    # a tolerance below float32 rounding: the sampled residuals must fail, in the graph
    torch.manual_seed(0)
    strict = LanguageModel(vocab_size=32, d_model=16, n_layers=2, n_seq=12, n_channels=2,
                           layer=layer, scan_backend="torch", dropout=0.0, ffn="mlp",
                           ffn_mult=2, conv_size=0,
                           guard={"enabled": True, "sample_rate": 1.0, "tol": 1e-30})
    torch._dynamo.reset()
    with pytest.raises(RuntimeError, match="BK scan certificate violated in layer"):
        torch.compile(strict, backend="aot_eager", fullgraph=True)(ids, ids)
