"""Document masking of the Transformer baseline: ``TransformerBaseline.forward(..., reset=...)``.

With a ``reset`` mask (True at a document's first token) attention is block-diagonal causal,
so every document is scored as if it were run alone; without it the forward is the old
``is_causal=True`` path, bit for bit. Checked here: documents are independent (logits equal
the document run alone, and tokens of an earlier document change nothing after the reset
while they do change their own document), the ``None`` path is the old one exactly, an
all-False mask is plain causal attention, bad masks are ``ValueError`` naming ``reset`` (the
messages of ResNet-BK's forward), the flex-attention block mask (the CUDA path, run eagerly
here) gives the SDPA mask's numbers, and ``bk train --model transformer
--reset-at-documents true`` passes the mask and trains with a finite loss.

Tolerances (float32 comparisons; logits here are O(1), at most ~1 in magnitude): the
document-alone run sees the same tokens at positions shifted by ``p``; RoPE makes the
scores depend on ``i - j`` only in exact arithmetic, but the rotation angles ``t·θ`` are
computed in float32 at different ``t``, so they round differently (absolute angle error up
to ~``T · 2^-24`` ≈ 3e-6 rad for ``T = 48``), and the attention sums run over a different
number of masked terms. Measured: 1.2e-7 (one float32 ulp at 0.8); bound: 1e-5, a hundred
times that and four orders of magnitude below the cross-document leak the mask removes
(~1e-1 without it). Where only masked-out tokens differ, the comparison is in float64 to
1e-12 (masked scores are exactly ``-inf``, whose weights are exactly 0).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bkmodel import baseline
from bkmodel import train as train_mod
from bkmodel.baseline import TransformerBaseline, TransformerConfig, document_mask
from bkmodel.data import document_starts
from bkmodel.presets import TrainConfig
from bkmodel.tokenizer import ByteTokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V, T = 61, 48
ATOL_F32 = 1e-5  # see the module docstring


@pytest.fixture(scope="module")
def model() -> TransformerBaseline:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=V, d_model=32, n_layers=2, n_heads=2, d_ff=64)
    return TransformerBaseline(cfg).eval()


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(1))


def _resets(*rows: list[int]) -> torch.Tensor:
    """(len(rows), T) bool, True at the listed positions of each row."""
    r = torch.zeros(len(rows), T, dtype=torch.bool)
    for b, ps in enumerate(rows):
        r[b, ps] = True
    return r


def _old_forward(m: TransformerBaseline, ids: torch.Tensor) -> torch.Tensor:
    """The logits of the forward before document masking existed (its code, inlined)."""
    B, n = ids.shape
    x = m.drop(m.embed(ids.long()))
    cos, sin = m._rope_tables(n, x.device, x.dtype)
    for blk in m.blocks:
        a, h = blk.attn, blk.ln1(x)
        D = h.shape[-1]
        q, k, v = a.qkv(h).split(D, dim=-1)
        q, k, v = (t.view(B, n, a.n_heads, D // a.n_heads).transpose(1, 2) for t in (q, k, v))
        q, k = baseline._rope(q, cos, sin), baseline._rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.0)
        x = x + blk.drop(a.proj(y.transpose(1, 2).reshape(B, n, D)))
        x = x + blk.drop(blk.out(F.gelu(blk.fc(blk.ln2(x)))))
    return m.logits(x)


class TestMask:
    def test_document_mask_is_block_diagonal_causal(self) -> None:
        reset = _resets([0, 5, 6], [17])
        mask = document_mask(reset)
        assert mask.shape == (2, 1, T, T) and mask.dtype == torch.bool
        doc = reset.long().cumsum(1)
        for b in range(2):
            for i in range(T):
                want = [j <= i and doc[b, j] == doc[b, i] for j in range(T)]
                assert mask[b, 0, i].tolist() == want
        assert mask.diagonal(dim1=-2, dim2=-1).all()  # no empty softmax row


class TestDocumentsAreIndependent:
    def test_logits_equal_each_document_run_alone(self, model, ids) -> None:
        # row 0: documents [0, 20) and [20, T); row 1: [0, 7), [7, 31), [31, T)
        reset = _resets([0, 20], [7, 31])
        with torch.no_grad():
            logits, _ = model(ids, reset=reset)
            for b, bounds in ((0, [0, 20, T]), (1, [0, 7, 31, T])):
                for s, e in zip(bounds[:-1], bounds[1:], strict=False):
                    alone, _ = model(ids[b: b + 1, s:e])
                    torch.testing.assert_close(logits[b: b + 1, s:e], alone, rtol=0,
                                               atol=ATOL_F32)
            leak = (model(ids)[0][0, 20:] - model(ids[:1, 20:])[0][0]).abs().max()
        assert leak > 1e3 * ATOL_F32  # the tolerance is far below what the mask removes

    def test_loss_is_that_of_the_masked_logits(self, model, ids) -> None:
        reset = _resets([9], [30])
        with torch.no_grad():
            logits, loss = model(ids[:, :-1], ids[:, 1:], reset=reset[:, :-1])
        want = F.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))
        torch.testing.assert_close(loss, want)

    def test_earlier_document_changes_nothing_after_the_reset(self, model, ids) -> None:
        m = TransformerBaseline(model.config)
        m.load_state_dict(model.state_dict())
        m = m.double().eval()
        p = 20
        reset = _resets([p], [p])
        other = ids.clone()
        other[:, :p] = (other[:, :p] + 1) % V  # every token of the first document changed
        with torch.no_grad():
            a, _ = m(ids, reset=reset)
            b, _ = m(other, reset=reset)
            c, _ = m(ids)
            d, _ = m(other)
        torch.testing.assert_close(a[:, p:], b[:, p:], rtol=0, atol=1e-12)
        assert (a[:, :p] - b[:, :p]).abs().max() > 1e-3  # the first document does see them
        assert (c[:, p:] - d[:, p:]).abs().max() > 1e-3  # without the mask they leak

    def test_with_dropout_in_training(self, ids) -> None:
        torch.manual_seed(0)
        m = TransformerBaseline(TransformerConfig(vocab_size=V, d_model=32, n_layers=1,
                                                  n_heads=2, d_ff=64, dropout=0.1)).train()
        _, loss = m(ids[:, :-1], ids[:, 1:], reset=_resets([5], [40])[:, :-1])
        loss.backward()
        assert math.isfinite(float(loss.detach()))


class TestNoResetIsTheOldPath:
    def test_none_is_the_old_forward_exactly(self, model, ids) -> None:
        with torch.no_grad():
            new, _ = model(ids)
            explicit, _ = model(ids, reset=None)
            old = _old_forward(model, ids)
        assert torch.equal(new, old) and torch.equal(explicit, old)

    def test_none_calls_sdpa_causal_without_a_mask(self, model, ids,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[dict] = []
        sdpa = F.scaled_dot_product_attention

        def spy(*args, **kwargs):
            calls.append(kwargs)
            return sdpa(*args, **kwargs)

        monkeypatch.setattr(baseline.F, "scaled_dot_product_attention", spy)
        with torch.no_grad():
            model(ids)
        assert len(calls) == model.config.n_layers
        assert all(c.get("is_causal") is True and c.get("attn_mask") is None for c in calls)
        calls.clear()
        with torch.no_grad():
            model(ids, reset=_resets([3], [4]))
        assert all(not c.get("is_causal") and c["attn_mask"].shape == (2, 1, T, T)
                   for c in calls)

    def test_all_false_is_plain_causal(self, model, ids) -> None:
        with torch.no_grad():
            a, _ = model(ids, reset=torch.zeros(2, T, dtype=torch.bool))
            b, _ = model(ids)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


class TestBadReset:
    @pytest.mark.parametrize("bad", [
        torch.zeros(2, T, dtype=torch.long),         # not bool
        torch.zeros(2, T - 1, dtype=torch.bool),     # wrong shape
        torch.zeros(2, T, 1, dtype=torch.bool),      # wrong rank
        [[False] * T] * 2,                           # not a tensor
        torch.zeros(2, T, dtype=torch.bool, device="meta"),  # another device
    ], ids=["long", "short", "rank3", "list", "device"])
    def test_value_error_naming_reset(self, model, ids, bad) -> None:
        with pytest.raises(ValueError, match=r"^reset must ") as err:
            model(ids, reset=bad)
        # the same message as ResNet-BK's forward for the same mask
        from bkmodel.model import LanguageModel

        with pytest.raises(ValueError) as bk_err:
            LanguageModel._check_reset(bad, ids)
        assert str(err.value) == str(bk_err.value)

    def test_keyword_only(self, model, ids) -> None:
        with pytest.raises(TypeError):
            model(ids, None, _resets([1], [2]))


@pytest.mark.skipif(baseline.flex_attention is None, reason="no torch flex attention")
class TestFlexPath:
    def test_block_mask_gives_the_sdpa_numbers(self, model, ids,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        """The CUDA path (block mask + flex attention), run eagerly on CPU."""
        reset = _resets([0, 20], [7, 31])
        with torch.no_grad():
            want, _ = model(ids, reset=reset)
        monkeypatch.setattr(baseline, "_use_flex", lambda device, dropout: True)
        with pytest.warns(UserWarning, match="without torch.compile"), torch.no_grad():
            got, _ = model(ids, reset=reset)
        torch.testing.assert_close(got, want, rtol=0, atol=ATOL_F32)

    def test_used_only_on_cuda_without_dropout(self, monkeypatch: pytest.MonkeyPatch) -> None:
        cpu, cuda = torch.device("cpu"), torch.device("cuda")
        assert not baseline._use_flex(cpu, False)
        assert baseline._use_flex(cuda, False) and not baseline._use_flex(cuda, True)
        monkeypatch.setattr(baseline, "USE_FLEX_ATTENTION", False)
        assert not baseline._use_flex(cuda, False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU-only: flex attention compiled "
                    "on CUDA (its CPU counterpart, run eagerly, is TestFlexPath)")
def test_flex_path_on_cuda_matches_sdpa_mask(model, ids,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA path as training runs it (compiled flex attention and block mask, float32 and
    bf16 autocast, forward and backward) against the SDPA mask on the same GPU."""
    m = TransformerBaseline(model.config).cuda().train()
    m.load_state_dict(model.state_dict())
    for mod in m.modules():  # dropout off, so both paths are deterministic
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    x, reset = ids.cuda(), _resets([0, 20], [7, 31]).cuda()
    out = {}
    for flex in (False, True):
        monkeypatch.setattr(baseline, "_use_flex", lambda device, dropout, f=flex: f)
        for amp in (False, True):
            m.zero_grad()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                logits, loss = m(x, x, reset=reset)
            loss.backward()
            out[flex, amp] = (logits.float(), next(iter(m.parameters())).grad.clone())
    for amp, tol in ((False, 1e-4), (True, 5e-2)):  # bf16: 8 mantissa bits on O(1) logits
        torch.testing.assert_close(out[True, amp][0], out[False, amp][0], rtol=0, atol=tol)
        torch.testing.assert_close(out[True, amp][1], out[False, amp][1], rtol=tol, atol=tol)


# -- bk train --model transformer --reset-at-documents true -----------------------------------
EOT = ByteTokenizer.eot_id


def _stream(n_docs: int, seed: int) -> np.ndarray:
    """Documents of 5..40 random bytes, each followed by EOT (as tests/test_train_tbptt.py)."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(n_docs):
        parts.append(rng.integers(0, 256, int(rng.integers(5, 41))))
        parts.append([EOT])
    return np.concatenate(parts).astype(np.int64)


TRAIN_TOKENS, VAL_TOKENS = _stream(120, 0), _stream(20, 1)


def test_train_transformer_with_resets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(train_mod, "_prepare_data",
                        lambda cfg, cache_dir: (ByteTokenizer(), TRAIN_TOKENS, VAL_TOKENS))
    calls: list[dict] = []
    handle = []

    def fault(step: int, model: torch.nn.Module, batch: torch.Tensor) -> None:
        if not handle:
            handle.append(model.register_forward_pre_hook(
                lambda mod, args, kwargs: calls.append({"ids": args[0], **kwargs})
                if mod.training else None, with_kwargs=True))

    msgs: list[str] = []
    cfg = TrainConfig.from_preset("ci", model="transformer", reset_at_documents=True,
                                  max_steps=2, log_every=1, eval_every=100, ckpt_every=100,
                                  device="cpu", eval_tokens=64)
    summary = train_mod.train(cfg, tmp_path / "run", progress=False, log=msgs.append,
                              fault=fault)
    assert not any("no effect" in m for m in msgs)
    assert len(calls) == 2
    starts = document_starts(TRAIN_TOKENS, EOT)
    for c in calls:  # the mask is the stream's document starts of each row
        ids, reset = c["ids"], c["reset"]
        assert reset.dtype == torch.bool and reset.shape == ids.shape
        for r in range(len(ids)):
            (s,) = np.flatnonzero((np.lib.stride_tricks.sliding_window_view(
                TRAIN_TOKENS, ids.shape[1]) == ids[r].numpy()).all(1))
            assert np.array_equal(reset[r].numpy(), starts[s: s + ids.shape[1]])
        assert int(reset.sum()) >= len(ids)  # documents start inside the windows
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r and "event" not in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert summary["steps"] == 2 and math.isfinite(summary["val_loss"])
