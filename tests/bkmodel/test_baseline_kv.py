"""KV-cache decoding of the Transformer baseline: ``prefill`` / ``step`` / ``generate``.

Checked here: the prefill's logits and every cached step's logits equal the full forward's
last-position logits (prompts of 1, 2, 5 and 17 tokens, several steps each, batch 2; also a
cache continued by several tokens at once); greedy and seeded sampling ``generate`` give the
same tokens with the cache as the old cacheless loop (``use_cache=False``), the default takes
the cache inside ``max_seq_len`` and the cropping loop beyond it; the step has fixed shapes
(every cache tensor keeps its shape and ``data_ptr``, the position is a 0-d tensor, the
returned cache is the same object: what CUDA-graph capture needs) and writes only its slot;
and bad arguments are ``ValueError`` naming them.

Tolerance (float32, logits of these fresh models are O(1), at most ~0.8 in magnitude): the
cached step computes the same sums as the forward's last row in another order (one query
against the whole buffer under a mask, where the masked slots' weights are exactly 0, instead
of the T × T causal kernel; the head applied to one position instead of T), so the two differ
by rounding only. Measured: at most 1.8e-7 (three float32 ulps at 0.67, the largest logit);
bound 1e-5, fifty times that, and more than three orders of magnitude below what an
off-by-one position changes (the negative control below: 2.4e-2, asserted > 1e-2).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from bkmodel.baseline import TransformerBaseline, TransformerConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V = 300
ATOL = 1e-5
ROOT = Path(__file__).resolve().parents[2]


def _model(max_seq_len: int = 64, **kw) -> TransformerBaseline:
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, d_model=32, n_layers=2, n_heads=4, d_ff=64,
               max_seq_len=max_seq_len) | kw
    return TransformerBaseline(TransformerConfig(**cfg)).eval()


def _ids(B: int, T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _last_logits(m: TransformerBaseline, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return m(ids)[0][:, -1]


def _tensors(cache: dict) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in cache.items():
        if isinstance(v, dict):
            out |= {f"{k}.{kk}": vv for kk, vv in v.items()}
        else:
            out[k] = v
    return out


class TestStepEqualsForward:
    @pytest.mark.parametrize("T", [1, 2, 5, 17])
    def test_prefill_and_steps(self, T):
        m = _model()
        ids = _ids(2, T)
        logits, cache = m.prefill(ids, T + 8)
        assert logits.shape == (2, V)
        torch.testing.assert_close(logits, _last_logits(m, ids), atol=ATOL, rtol=0)
        seq = ids
        for i in range(8):
            tok = _ids(2, 1, seed=100 + i)[:, 0]
            seq = torch.cat([seq, tok[:, None]], 1)
            logits, cache = m.step(tok, cache)
            assert logits.shape == (2, V) and int(cache["length"]) == T + i + 1
            torch.testing.assert_close(logits, _last_logits(m, seq), atol=ATOL, rtol=0)

    def test_several_tokens_continue_a_cache(self):
        # forward(chunk, cache=...) on a non-empty cache: the masked path with T > 1
        m = _model()
        ids = _ids(2, 12)
        _, cache = m.prefill(ids[:, :4], 12)
        with torch.no_grad():
            logits, loss = m(ids[:, 4:9], cache=cache)
        assert loss is None and logits.shape == (2, 1, V) and int(cache["length"]) == 9
        torch.testing.assert_close(logits[:, 0], _last_logits(m, ids[:, :9]), atol=ATOL, rtol=0)
        logits, _ = m.step(ids[:, 9], cache)
        torch.testing.assert_close(logits, _last_logits(m, ids[:, :10]), atol=ATOL, rtol=0)

    def test_empty_cache_step_is_a_prefill(self):
        m = _model()
        ids = _ids(2, 3)
        cache = m.new_cache(2, 8)
        for t in range(3):
            logits, cache = m.step(ids[:, t], cache)
        torch.testing.assert_close(logits, _last_logits(m, ids), atol=ATOL, rtol=0)

    def test_negative_control_off_by_one_is_far_outside_the_tolerance(self):
        # the tolerance is tight enough to see a wrong position: decode the token one slot
        # early (RoPE angle and visible keys both off by one)
        m = _model()
        ids = _ids(2, 6)
        _, cache = m.prefill(ids[:, :5], 8)
        cache["length"] -= 1
        logits, _ = m.step(ids[:, 5], cache)
        assert (logits - _last_logits(m, ids)).abs().max() > 1e3 * ATOL

    def test_tt_embedding_untied_head(self):
        m = _model(embedding="tt", tt_rank=4)
        ids = _ids(2, 4)
        _, cache = m.prefill(ids[:, :3], 6)
        logits, _ = m.step(ids[:, 3], cache)
        torch.testing.assert_close(logits, _last_logits(m, ids), atol=ATOL, rtol=0)

    def test_cache_in_the_model_dtype(self):
        m = _model().double()
        ids = _ids(1, 3)
        logits, cache = m.prefill(ids, 5)
        assert all(t.dtype == torch.float64 for k, t in _tensors(cache).items()
                   if k != "length")
        assert cache["length"].dtype == torch.long and logits.dtype == torch.float64
        logits, _ = m.step(ids[:, 0], cache)
        ref = _last_logits(m, torch.cat([ids, ids[:, :1]], 1))
        torch.testing.assert_close(logits, ref, atol=1e-12, rtol=0)


class TestGenerate:
    @pytest.mark.parametrize("T", [1, 4, 13])
    def test_greedy_same_tokens_with_and_without_cache(self, T):
        m = _model()
        ids = _ids(2, T)
        a = m.generate(ids, 40, temperature=0, use_cache=True)
        b = m.generate(ids, 40, temperature=0, use_cache=False)
        assert a.shape == (2, T + 40) and torch.equal(a, b)
        assert torch.equal(m.generate(ids, 40, temperature=0), a)  # default: the cache

    @pytest.mark.parametrize("top_k", [None, 7])
    def test_seeded_sampling_same_tokens(self, top_k):
        m = _model()
        ids = _ids(2, 5)
        a, b = (m.generate(ids, 30, temperature=0.9, top_k=top_k, use_cache=c,
                           generator=torch.Generator().manual_seed(3)) for c in (True, False))
        assert torch.equal(a, b)

    def test_default_caches_inside_max_seq_len_and_crops_beyond(self):
        m = _model(max_seq_len=16)
        calls: list[tuple[int, bool]] = []
        m.register_forward_pre_hook(
            lambda mod, args, kwargs: calls.append((args[0].shape[1], "cache" in kwargs)),
            with_kwargs=True)
        m.generate(_ids(1, 6), 10, temperature=0)  # 16 <= 16: prefill + 9 steps
        assert calls == [(6, True)] + [(1, True)] * 9
        calls.clear()
        out = m.generate(_ids(1, 6), 11, temperature=0)  # 17 > 16: the cropping loop
        assert [c for _, c in calls] == [False] * 11 and calls[-1][0] == 16
        assert torch.equal(out, m.generate(_ids(1, 6), 11, temperature=0, use_cache=False))

    def test_no_new_tokens_runs_no_step(self):
        m = _model()
        calls: list[int] = []
        m.register_forward_pre_hook(lambda *a: calls.append(1))
        ids = _ids(2, 3)
        assert m.generate(ids, 0, use_cache=True) is ids and calls == []

    def test_training_mode_restored(self):
        m = _model().train()
        m.generate(_ids(1, 3), 4, temperature=0)
        assert m.training


class TestFixedShapes:
    def test_step_writes_in_place(self):
        m = _model()
        ids = _ids(2, 5)
        _, cache = m.prefill(ids, 12)
        before = {k: (t.data_ptr(), t.shape, t.dtype) for k, t in _tensors(cache).items()}
        assert cache["length"].shape == () and cache["0"]["k"].shape == (2, 4, 12, 8)
        tok = ids[:, -1]
        for _ in range(6):
            logits, out = m.step(tok, cache)
            assert out is cache
            assert {k: (t.data_ptr(), t.shape, t.dtype)
                    for k, t in _tensors(cache).items()} == before
            tok = logits.argmax(-1)
        for i in range(2):  # slots past the length are untouched (zeros)
            for name in ("k", "v"):
                buf = cache[str(i)][name]
                assert bool(buf[:, :, 11:].eq(0).all()) and not bool(buf[:, :, :11].eq(0).all())

    def test_static_replay_of_the_benchmark(self):
        # the closure benchmarks/decode_speed.py captures in a CUDA graph, run eagerly on CPU:
        # it reads and writes only its static buffers, and its tokens are the eager loop's
        spec = importlib.util.spec_from_file_location(
            "decode_speed", ROOT / "benchmarks" / "decode_speed.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        m = _model()
        logits, cache = m.prefill(_ids(1, 7), 20)
        tok = logits.argmax(-1)
        step, static_tok, static = bench._static_step(lambda t, c: m.step(t, c)[0], tok, cache)
        ptrs = {k: t.data_ptr() for k, t in _tensors(static).items()}
        got = []
        for _ in range(10):
            step()
            got.append(int(static_tok))
        assert {k: t.data_ptr() for k, t in _tensors(static).items()} == ptrs
        assert static_tok.data_ptr() != tok.data_ptr() and int(static["length"]) == 17
        ref = m.generate(_ids(1, 7), 11, temperature=0, use_cache=False)[0, 8:].tolist()
        assert got == ref

    def test_rope_tables_are_the_forwards(self):
        m = _model()
        cache = m.new_cache(1, 10)
        cos, sin = m._rope_tables(10, torch.device("cpu"), torch.float32)
        assert torch.equal(cache["cos"], cos) and torch.equal(cache["sin"], sin)


class TestErrors:
    def test_generate_past_max_seq_len_with_cache(self):
        m = _model(max_seq_len=16)
        with pytest.raises(ValueError, match=r"T=10, \+ max_new_tokens=7 = 17 > max_seq_len=16 "
                                             r"\(config.max_seq_len\)"):
            m.generate(_ids(1, 10), 7, use_cache=True)
        assert m.generate(_ids(1, 10), 6, temperature=0, use_cache=True).shape == (1, 16)

    def test_generate_use_cache_value(self):
        with pytest.raises(ValueError, match="use_cache"):
            _model().generate(_ids(1, 3), 2, use_cache="yes")

    def test_prefill_lengths(self):
        m = _model(max_seq_len=16)
        with pytest.raises(ValueError, match=r"T=9 > max_len=8"):
            m.prefill(_ids(1, 9), 8)
        with pytest.raises(ValueError, match=r"max_len=17 > max_seq_len=16"):
            m.prefill(_ids(1, 9), 17)
        with pytest.raises(ValueError, match="max_len"):
            m.prefill(_ids(1, 2), 0)
        with pytest.raises(ValueError, match="input_ids"):
            m.prefill(torch.tensor([[V]]), 4)

    def test_step_on_a_full_cache(self):
        m = _model()
        _, cache = m.prefill(_ids(1, 4), 5)
        m.step(_ids(1, 1)[:, 0], cache)
        with pytest.raises(ValueError, match=r"KV cache is full: 5 cached \+ T=1 new tokens > "
                                             r"max_len=5"):
            m.step(_ids(1, 1)[:, 0], cache)

    def test_step_arguments(self):
        m = _model()
        _, cache = m.prefill(_ids(2, 4), 8)
        with pytest.raises(ValueError, match="token must be a"):
            m.step(_ids(2, 1), cache)  # (B, 1), not (B,)
        with pytest.raises(ValueError, match="batch 3"):
            m.step(_ids(3, 1)[:, 0], cache)
        with pytest.raises(ValueError, match="input_ids must lie in"):
            m.step(torch.tensor([1, V]), cache)
        with pytest.raises(ValueError, match="KV cache from new_cache"):
            m.step(_ids(2, 1)[:, 0], {"0": None})
        assert int(cache["length"]) == 4  # nothing was written by the refused calls

    def test_forward_with_cache_refuses_targets_and_reset(self):
        m = _model()
        _, cache = m.prefill(_ids(1, 4), 8)
        x = _ids(1, 1)
        with pytest.raises(ValueError, match="neither targets nor reset"):
            m(x, x, cache=cache)
        with pytest.raises(ValueError, match="neither targets nor reset"):
            m(x, reset=torch.zeros(1, 1, dtype=torch.bool), cache=cache)
