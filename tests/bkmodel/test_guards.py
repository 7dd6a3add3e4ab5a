"""Runtime certificate guards: each check fires on an injected fault, with each action."""

from __future__ import annotations

import logging
import random
import traceback

import pytest
import torch

import bkmodel.guards as guards
from bkmodel.config import GuardConfig
from bkmodel.guards import GuardError, ScanGuard, recurrence_residual
from bkmodel.model import LanguageModel
from bkmodel.ops.bk_scan import bk_scan

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def inputs(B=2, N=30, C=3, seed=0, per_token=False):
    """(v, lam, eta, b); eta and b (B, N, C) when ``per_token`` (the selective scan)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(B, N, C, generator=g)
    lam = torch.randn(C, generator=g)
    eta = torch.rand(C, generator=g) + 0.1
    b = torch.rand(C, generator=g) + 0.5
    if per_token:
        eta = torch.rand(B, N, C, generator=g) + 0.1
        b = torch.rand(B, N, C, generator=g) + 0.5
    return v, lam, eta, b


def faulty_scan(fault: str):
    """A bk_scan that corrupts its float32 output (float64 calls stay exact)."""

    def scan(v, lam, eta, b, *, backend="auto", return_stats=False, tol=1e-3,
             initial_state=None):
        out = bk_scan(v, lam, eta, b, backend="torch", return_stats=False,
                      initial_state=initial_state)
        if v.dtype == torch.float64:
            return out
        g_re, g_im = (t.clone() for t in out)
        if fault == "herglotz":
            g_im[0, 5, 0] = -1.0  # Im g < 0
        elif fault == "bound":
            e = eta[2] if eta.ndim == 1 else eta[1, 3, 2]  # per channel or per token
            g_re[1, 3, 2] = 10.0 / float(e)  # |g| > 1/eta
        elif fault == "nan":
            g_re[0, 0, 1] = float("nan")
        elif fault == "residual":  # Herglotz-valid but not the recurrence's solution
            g_re, g_im = g_re.roll(1, dims=1), g_im.roll(1, dims=1)
        if return_stats:
            from bkmodel.ops.bk_scan import scan_stats

            return g_re, g_im, scan_stats(g_re, g_im, eta, tol)
        return g_re, g_im

    return scan


class TestCleanScan:
    def test_no_event_and_same_output(self):
        guard = ScanGuard(GuardConfig(action="raise"))
        g = guard.scan(*inputs())
        ref = bk_scan(*inputs(), backend="torch")
        assert torch.equal(g[0], ref[0]) and torch.equal(g[1], ref[1])
        rep = guard.report()
        assert rep["scans"] == 1 and rep["residual_checks"] == 1
        assert rep["violating_scans"] == 0 and rep["events"] == 0

    def test_disabled_counts_nothing(self):
        guard = ScanGuard(GuardConfig(enabled=False))
        guard.scan(*inputs())
        assert guard.report()["scans"] == 0

    def test_residual_of_true_solution_is_small(self):
        v, lam, eta, b = inputs()
        g_re, g_im = bk_scan(v, lam, eta, b, backend="torch")
        r = recurrence_residual(v, lam, eta, b, g_re, g_im, 200, random.Random(0))
        # float32 rounding of g: a few eps32 relative to the normalisation
        assert float(r.max()) < 10 * torch.finfo(torch.float32).eps


@pytest.mark.parametrize("fault", ["herglotz", "bound", "nan", "residual"])
class TestInjectedFaults:
    def test_raise(self, fault, monkeypatch, caplog):
        monkeypatch.setattr(guards, "bk_scan", faulty_scan(fault))
        guard = ScanGuard(GuardConfig(action="raise", residual_samples=500))
        with caplog.at_level(logging.WARNING, logger="bkmodel.guards"), \
                pytest.raises(GuardError, match="layer 7"):
            guard.scan(*inputs(), layer="7")
        rep = guard.report()
        kind = "nonfinite" if fault == "nan" else fault
        assert rep[kind] == 1 and rep["raised"] == 1 and rep["events"] == 1
        assert "BK guard" in caplog.text

    def test_recompute_fp64_recovers(self, fault, monkeypatch):
        monkeypatch.setattr(guards, "bk_scan", faulty_scan(fault))
        guard = ScanGuard(GuardConfig(action="recompute_fp64", residual_samples=500))
        v, lam, eta, b = inputs()
        g_re, g_im = guard.scan(v, lam, eta, b)
        assert g_re.dtype == torch.float32
        r_re, r_im = bk_scan(v.double(), lam.double(), eta.double(), b.double(),
                             backend="torch")
        assert torch.allclose(g_re.double(), r_re, rtol=1e-6, atol=1e-7)
        assert torch.allclose(g_im.double(), r_im, rtol=1e-6, atol=1e-7)
        rep = guard.report()
        assert rep["recomputed_fp64"] == 1 and rep["recovered"] == 1 and rep["raised"] == 0

    def test_skip_step(self, fault, monkeypatch):
        monkeypatch.setattr(guards, "bk_scan", faulty_scan(fault))
        guard = ScanGuard(GuardConfig(action="skip_step", residual_samples=500))
        g_re, g_im = guard.scan(*inputs())
        assert guard.skip_requested
        assert torch.isfinite(g_re).all() and torch.isfinite(g_im).all()
        assert guard.report()["skip_requests"] == 1
        guard.begin_forward()
        assert not guard.skip_requested


@pytest.mark.parametrize("fault", ["herglotz", "bound", "nan", "residual"])
class TestInjectedFaultsPerToken:
    """The same faults with per-token eta and b (the selective scan) and an initial state."""

    def args(self):
        v, lam, eta, b = inputs(per_token=True)
        g0 = torch.complex(torch.randn(2, 3), torch.rand(2, 3) + 0.1)
        return v, lam, eta, b, g0

    def test_raise(self, fault, monkeypatch):
        monkeypatch.setattr(guards, "bk_scan", faulty_scan(fault))
        guard = ScanGuard(GuardConfig(action="raise", residual_samples=500))
        v, lam, eta, b, g0 = self.args()
        with pytest.raises(GuardError, match="layer 2"):
            guard.scan(v, lam, eta, b, layer="2", initial_state=g0)
        kind = "nonfinite" if fault == "nan" else fault
        assert guard.report()[kind] == 1

    def test_recompute_fp64_recovers(self, fault, monkeypatch):
        monkeypatch.setattr(guards, "bk_scan", faulty_scan(fault))
        guard = ScanGuard(GuardConfig(action="recompute_fp64", residual_samples=500))
        v, lam, eta, b, g0 = self.args()
        g_re, g_im = guard.scan(v, lam, eta, b, initial_state=g0)
        r_re, r_im = bk_scan(v.double(), lam.double(), eta.double(), b.double(),
                             backend="torch", initial_state=g0.to(torch.complex128))
        assert torch.allclose(g_re.double(), r_re, rtol=1e-6, atol=1e-7)
        assert torch.allclose(g_im.double(), r_im, rtol=1e-6, atol=1e-7)
        assert guard.report()["recovered"] == 1


class TestPerToken:
    def test_clean_scan_with_initial_state(self):
        v, lam, eta, b = inputs(per_token=True)
        g0 = torch.complex(torch.randn(2, 3), torch.rand(2, 3) + 0.1)
        guard = ScanGuard(GuardConfig(action="raise", residual_samples=500))
        g = guard.scan(v, lam, eta, b, initial_state=g0)
        ref = bk_scan(v, lam, eta, b, backend="torch", initial_state=g0)
        assert torch.equal(g[0], ref[0]) and torch.equal(g[1], ref[1])
        assert guard.report()["violating_scans"] == 0

    def test_residual_sees_the_initial_state(self):
        # the residual at position 1 uses g_0: the true solution passes with it, and fails
        # at position 1 without it (the initial state then looks like a forged value)
        v, lam, eta, b = inputs(B=1, N=1, C=3, per_token=True)
        g0 = torch.complex(torch.randn(1, 3), torch.rand(1, 3) + 1.0)
        g_re, g_im = bk_scan(v, lam, eta, b, backend="torch", initial_state=g0)
        r = recurrence_residual(v, lam, eta, b, g_re, g_im, 50, random.Random(0), g0)
        assert float(r.max()) < 10 * torch.finfo(torch.float32).eps
        r0 = recurrence_residual(v, lam, eta, b, g_re, g_im, 50, random.Random(0))
        assert float(r0.max()) > 1e-3

    def test_check_step_per_token_bound(self):
        # a per-token bound: |g| = 0.9/eta_min is fine for the token with eta_min and a
        # violation for a token whose eta is 10x larger
        guard = ScanGuard(GuardConfig(action="raise"))
        eta = torch.tensor([[0.1, 0.1], [1.0, 0.1]], dtype=torch.float64)  # (B, C)
        g = torch.full((2, 2), 9.0j, dtype=torch.complex128)
        with pytest.raises(GuardError, match="decoding"):
            guard.check_step(g, eta, layer="0")
        assert guard.report()["bound"] == 1
        guard.check_step(g[:1], eta[:1], layer="0")
        assert guard.report()["violating_scans"] == 1


class TestGenuineFailure:
    def test_nan_potential_not_recoverable(self):
        # A NaN in v is not a rounding problem: float64 recompute fails too -> raise.
        v, lam, eta, b = inputs()
        v[0, 4, 0] = float("nan")
        guard = ScanGuard(GuardConfig(action="recompute_fp64"))
        with pytest.raises(GuardError, match="float64 recompute fails too"):
            guard.scan(v, lam, eta, b)
        rep = guard.report()
        assert rep["nonfinite"] == 1 and rep["recomputed_fp64"] == 1 and rep["raised"] == 1

    def test_sample_rate_zero_skips_residual(self, monkeypatch):
        monkeypatch.setattr(guards, "bk_scan", faulty_scan("residual"))
        guard = ScanGuard(GuardConfig(action="raise", sample_rate=0.0))
        guard.scan(*inputs())  # the residual fault is invisible to the other checks
        assert guard.report()["residual_checks"] == 0


class TestModelGuards:
    def tiny(self, action):
        torch.manual_seed(0)
        return LanguageModel(vocab_size=20, d_model=16, n_layers=2, n_seq=16, n_channels=2,
                             num_experts=2, top_k=1, guard={"action": action})

    def test_counters_on_clean_model(self):
        m = self.tiny("raise")
        m(torch.randint(0, 20, (2, 10)))
        rep = m.guard_report()
        assert rep["scans"] == 2 and rep["violating_scans"] == 0
        assert m.last_aux["guard"] == rep

    def test_nan_weight_skip_step(self):
        m = self.tiny("skip_step")
        with torch.no_grad():
            m.blocks[1].bk.v_proj.bias[0] = float("nan")
        x = torch.randint(0, 20, (2, 10))
        m(x, x)
        assert m.last_aux["skip_step"] is True
        assert m.guard_report()["nonfinite"] == 1

    def test_nan_weight_raise(self):
        m = self.tiny("raise")
        with torch.no_grad():
            m.blocks[0].bk.v_proj.bias[1] = float("nan")
        with pytest.raises(GuardError, match="layer 0"):
            m(torch.randint(0, 20, (2, 10)))

    def test_decoding_step_guard(self):
        m = self.tiny("raise")
        m.generate(torch.randint(0, 20, (1, 3)), 4)
        assert m.guard_report()["scans"] == 2 + 4 * 2  # prefill scans + per-step checks
        with torch.no_grad():
            m.blocks[0].bk.v_proj.bias[1] = float("nan")
        with pytest.raises(GuardError):
            m.generate(torch.randint(0, 20, (1, 3)), 2)


class TestDeferred:
    """Deferred mode (CUDA-graph training): counters recorded as tensors during the forward,
    read in one go afterwards, with the same counts and actions as the immediate mode."""

    @pytest.mark.parametrize("fault", ["herglotz", "bound", "nan", "residual"])
    @pytest.mark.parametrize("action", ["raise", "skip_step", "recompute_fp64"])
    def test_same_counts_as_immediate(self, fault, action, monkeypatch):
        monkeypatch.setattr(guards, "bk_scan", faulty_scan(fault))
        cfg = GuardConfig(action=action, residual_samples=500)
        immediate, deferred = ScanGuard(cfg), ScanGuard(cfg)
        try:
            immediate.scan(*inputs(), layer="3")
        except GuardError:
            pass
        deferred.defer()
        out = deferred.scan(*inputs(), layer="3")
        assert deferred.report()["scans"] == 0  # nothing read yet
        assert len(deferred.deferred) == 1 and out[0].shape == inputs()[0].shape
        if action == "raise":
            with pytest.raises(GuardError, match="layer 3"):
                deferred.consume_deferred()
        else:
            bad = deferred.consume_deferred()
            assert bad == ["3"]
        rep_i, rep_d = immediate.report(), deferred.report()
        if action == "recompute_fp64":  # the caller redoes the step in immediate mode
            assert rep_d["scans"] == 0 and rep_d["violating_scans"] == 0
            assert rep_i["recomputed_fp64"] == 1
        else:
            for k in ("scans", "violating_scans", fault if fault != "nan" else "nonfinite",
                      "raised", "skip_requests"):
                assert rep_d[k] == rep_i[k], k
            assert deferred.skip_requested == (action == "skip_step")

    def test_clean_scans_counted_once(self):
        guard = ScanGuard(GuardConfig(action="raise"))
        guard.defer()
        for layer in ("0", "1"):
            guard.scan(*inputs(), layer=layer)
        assert guard.consume_deferred() == []
        rep = guard.report()
        assert rep["scans"] == 2 and rep["residual_checks"] == 2
        assert rep["violating_scans"] == 0
        with pytest.raises(RuntimeError, match="deferred mode"):
            ScanGuard(GuardConfig()).consume_deferred()

    def test_model_forward_has_no_host_read_in_deferred_mode(self, monkeypatch):
        # every host read of a tensor value goes through Tensor.tolist/item/__bool__/__int__/
        # __float__: forbid them during a deferred forward (exceptions: the ids check, which
        # the trainer does on the host when capturing and the model then skips, and the CPU
        # scan's value checks, which the CUDA path skips)
        m = TestModelGuards().tiny("recompute_fp64")
        m.guard.defer()
        x = torch.randint(0, 20, (2, 10))
        monkeypatch.setattr(type(m), "_check_ids", lambda *a, **k: None)
        calls = []
        for name in ("tolist", "item", "__bool__", "__int__", "__float__"):
            real = getattr(torch.Tensor, name)

            def spy(self, *a, _real=real, _name=name, **k):
                # the CPU scan's own argument checks (skipped on CUDA tensors) do not count
                if not any("ops/bk_scan" in f.filename for f in traceback.extract_stack()):
                    calls.append(_name)
                return _real(self, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, spy)
        for mod in m.modules():
            if hasattr(mod, "dispatch"):
                mod.dispatch = "dense"
        _, loss = m(x, x)
        n_forward = len(calls)
        monkeypatch.undo()
        assert n_forward == 0, calls
        assert m.guard.consume_deferred() == []
        assert m.guard.report()["scans"] == 2
