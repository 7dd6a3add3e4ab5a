"""MoE feed-forward: learned top-k gate, scattering router, load-balance loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bkmodel.moe import MoE, scattering_route

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(router="learned", E=4, k=2, d=8, seed=0):
    torch.manual_seed(seed)
    return MoE(d, 16, d, num_experts=E, top_k=k, router=router)


def reference(moe: MoE, x: torch.Tensor, phase=None) -> torch.Tensor:
    """Token-by-token loop: sum over the chosen experts of weight * expert(x)."""
    out = []
    xf = x.reshape(-1, x.shape[-1])
    pf = None if phase is None else phase.reshape(-1)
    for t in range(xf.shape[0]):
        if moe.router == "learned":
            p = F.softmax(moe.gate(xf[t]), -1)
            w, idx = p.topk(moe.top_k)
            if moe.top_k > 1:
                w = w / w.sum()
        else:
            idx, w = scattering_route(pf[t:t + 1], moe.num_experts, moe.top_k)
            idx, w = idx[0], w[0]
        out.append(sum(w[j] * moe.experts[int(idx[j])](xf[t]) for j in range(moe.top_k)))
    return torch.stack(out).reshape(x.shape[:-1] + (moe.d_out,))


class TestLearned:
    @pytest.mark.parametrize("k", [1, 2, 4])
    def test_matches_token_loop(self, k):
        moe = make(k=k)
        x = torch.randn(2, 5, 8)
        y, st = moe(x)
        assert torch.allclose(y, reference(moe, x), atol=1e-6)
        assert st["load"].sum() == pytest.approx(1.0)

    def test_uniform_gate_aux_loss_is_one(self):
        # With a uniform gate P_e = 1/E, E * sum_e f_e P_e = sum_e f_e = 1 exactly.
        moe = make()
        with torch.no_grad():
            moe.gate.weight.zero_()
        _, st = moe(torch.randn(3, 7, 8))
        assert float(st["aux_loss"].detach()) == pytest.approx(1.0, abs=1e-6)

    def test_aux_loss_penalises_imbalance_and_trains_gate(self):
        moe = make(k=1)
        with torch.no_grad():
            moe.gate.weight.zero_()
            moe.gate.weight[0] = 5.0  # nearly all tokens to expert 0
        x = torch.randn(4, 8, 8).abs()
        _, st = moe(x)
        assert float(st["aux_loss"].detach()) > 1.5
        st["aux_loss"].backward()
        assert moe.gate.weight.grad is not None and moe.gate.weight.grad.abs().sum() > 0

    def test_tokens_independent_of_batch(self):
        moe = make()
        x = torch.randn(1, 6, 8)
        y_all, _ = moe(x)
        y_one, _ = moe(x[:, 2:3])
        assert torch.allclose(y_all[:, 2:3], y_one, atol=1e-6)

    def test_single_expert_is_mlp(self):
        moe = make(E=1, k=1)
        x = torch.randn(2, 3, 8)
        y, st = moe(x)
        assert torch.allclose(y, moe.experts[0](x), atol=1e-6)
        assert float(st["aux_loss"].detach()) == 0.0


class TestScattering:
    def test_bins(self):
        E = 4
        phase = torch.tensor([0.01, math.pi / 4 + 0.01, math.pi / 2 + 0.01, math.pi - 0.01])
        idx, w = scattering_route(phase, E, 1)
        assert idx[:, 0].tolist() == [0, 1, 2, 3]
        assert torch.all(w == 1.0)

    def test_top2_nearest_centres(self):
        idx, w = scattering_route(torch.tensor([0.3 * math.pi]), 4, 2)
        # centres pi/8, 3pi/8, 5pi/8, 7pi/8: nearest to 0.3 pi are 3pi/8 (1) then pi/8 (0)
        assert sorted(idx[0].tolist()) == [0, 1]
        assert torch.allclose(w, torch.full((1, 2), 0.5))

    def test_moe_matches_token_loop(self):
        moe = make(router="scattering", k=2)
        x = torch.randn(2, 5, 8)
        phase = torch.rand(2, 5) * math.pi
        y, st = moe(x, phase=phase)
        assert torch.allclose(y, reference(moe, x, phase), atol=1e-6)
        assert float(st["aux_loss"].detach()) == 0.0
        assert not any(p is moe.gate for p in moe.parameters())  # parameter-free routing

    def test_needs_phase(self):
        with pytest.raises(ValueError, match="phase"):
            make(router="scattering")(torch.randn(1, 2, 8))


class TestBadArgs:
    def test_top_k_exceeds(self):
        with pytest.raises(ValueError, match="top_k"):
            MoE(4, 8, 4, num_experts=2, top_k=3)

    def test_router_name(self):
        with pytest.raises(ValueError, match="router"):
            MoE(4, 8, 4, num_experts=2, top_k=1, router="hash")


class TestDispatch:
    """Dense dispatch (every expert on every token, gate-weighted) equals the sparse gather
    and the token-by-token reference: values, every parameter's gradient, load stats."""

    @pytest.mark.parametrize("router,k", [("learned", 1), ("learned", 2), ("scattering", 1),
                                          ("scattering", 3)])
    def test_dense_equals_sparse(self, router, k):
        x = torch.randn(3, 5, 8, dtype=torch.float64)
        phase = torch.rand(3, 5, dtype=torch.float64) * math.pi
        outs = {}
        for dispatch in ("sparse", "dense"):
            m = make(router, E=4, k=k).double()
            m.dispatch = dispatch
            xx = x.clone().requires_grad_()
            y, st = m(xx, phase=phase if router == "scattering" else None)
            (y.square().sum() + st["aux_loss"]).backward()
            grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
            outs[dispatch] = (y.detach(), xx.grad, st["load"], grads)
            if dispatch == "dense":
                ref = reference(m, x, phase if router == "scattering" else None)
                # the learned gate's softmax runs in float32 (route), the reference's in float64
                torch.testing.assert_close(y.detach(), ref, rtol=1e-6, atol=1e-6)
        (ys, gs, ls, ps), (yd, gd, ld, pd) = outs["sparse"], outs["dense"]
        torch.testing.assert_close(yd, ys, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gd, gs, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ld, ls, rtol=0, atol=0)
        assert abs(float(ld.sum()) - 1.0) < 1e-6  # float32 fractions
        # an expert no token chose gets an exactly zero gradient from the dense path
        for n in ps:
            torch.testing.assert_close(pd.get(n, torch.zeros_like(ps[n])), ps[n],
                                       rtol=1e-12, atol=1e-12)

    def test_rejects_unknown_dispatch(self):
        with pytest.raises(ValueError, match="dispatch must be"):
            MoE(4, 8, 4, num_experts=2, top_k=1, dispatch="fast")


class TestGroupedDispatch:
    """Sort-by-expert dispatch with grouped matmuls equals the sparse gather."""

    @pytest.mark.parametrize("router,k", [("learned", 1), ("learned", 2), ("scattering", 3)])
    @pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
    def test_grouped_equals_sparse(self, router, k, dtype):
        # float64 runs the masked fallback (exact up to rounding: 1e-12); float32 runs
        # torch._grouped_mm, whose accumulation order differs from the per-expert matmuls:
        # a few float32 ulps of the outputs' scale over 16-32 term sums (1e-5 relative)
        torch.manual_seed(1)
        x = torch.randn(3, 5, 8, dtype=dtype)
        phase = torch.rand(3, 5, dtype=dtype) * math.pi
        outs = {}
        for dispatch in ("sparse", "grouped"):
            torch.manual_seed(0)
            m = MoE(8, 16, 8, num_experts=4, top_k=k, router=router, dispatch=dispatch).to(dtype)
            xx = x.clone().requires_grad_()
            y, st = m(xx, phase=phase if router == "scattering" else None)
            (y.sum() + y.square().sum() + st["aux_loss"]).backward()  # sum(): zero strides
            grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
            outs[dispatch] = (y.detach(), xx.grad, grads)
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        (ys, gs, ps), (yg, gg, pg) = outs["sparse"], outs["grouped"]
        torch.testing.assert_close(yg, ys, rtol=tol, atol=tol)
        torch.testing.assert_close(gg, gs, rtol=tol, atol=tol)
        for n in ps:
            torch.testing.assert_close(pg.get(n, torch.zeros_like(ps[n])), ps[n],
                                       rtol=tol, atol=tol)

    def test_bf16_autocast(self):
        torch.manual_seed(0)
        m = MoE(8, 16, 8, num_experts=4, top_k=2, dispatch="grouped")
        x = torch.randn(4, 6, 8)
        ref, _ = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, _ = m(x)
        assert y.dtype == torch.bfloat16
        assert float((y.float() - ref).abs().max() / ref.abs().max()) < 8 * 2.0 ** -8

    def test_widths_must_be_multiples_of_8(self):
        with pytest.raises(ValueError, match="dispatch='grouped' needs d_in, hidden and d_out"):
            MoE(8, 12, 8, num_experts=2, top_k=1, dispatch="grouped")

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only: host-sync check")
    def test_no_host_synchronisation_on_cuda(self):
        m = MoE(64, 128, 64, num_experts=4, top_k=2, dispatch="grouped").cuda()
        x = torch.randn(2, 32, 64, device="cuda")
        m(x)  # warm-up (allocations)
        torch.cuda.set_sync_debug_mode("error")
        try:
            y, _ = m(x)
            y.sum().backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
