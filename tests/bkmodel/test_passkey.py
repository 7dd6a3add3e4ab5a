"""bkmodel.passkey: the prompt layout, the scores against full forwards, the fine-tune loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.model import LanguageModel
from bkmodel.passkey import (
    ANSWER,
    NEEDLE,
    QUESTION,
    continuation_logprobs,
    evaluate_passkey,
    finetune_passkey,
    greedy_continuation,
    make_sample,
    make_samples,
)
from bkmodel.presets import TrainConfig
from bkmodel.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
FILLER = np.random.default_rng(0).integers(97, 123, 5000).astype(np.int64)  # letters


def _bk() -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(vocab_size=257, d_model=16, n_layers=2, n_seq=32, n_channels=4,
                         ffn="mlp", scan_backend="torch").double().eval()


def _tf() -> TransformerBaseline:
    torch.manual_seed(0)
    return TransformerBaseline(TransformerConfig(vocab_size=257, d_model=16, n_layers=1,
                                                 n_heads=2, d_ff=32, max_seq_len=32)).double()


class TestSample:
    @pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
    def test_layout(self, depth: float) -> None:
        s = make_sample(TOK, FILLER, 300, depth, np.random.default_rng(1))
        assert s.length == 300 and len(s.key) == 5
        text = TOK.decode(s.prompt.tolist())
        needle = NEEDLE.format(key=s.key)
        assert text.endswith(QUESTION) and needle in text
        n_fill = 300 - len(needle) - len(QUESTION)
        assert text.index(needle) == round(depth * n_fill)
        assert TOK.decode(s.answer.tolist()) == ANSWER.format(key=s.key)

    def test_same_samples_for_every_call(self) -> None:
        a, b = (make_samples(TOK, FILLER, 200, 0.25, 3, seed=7) for _ in range(2))
        assert [s.key for s in a] == [s.key for s in b]
        assert all(np.array_equal(x.prompt, y.prompt) for x, y in zip(a, b, strict=True))

    @pytest.mark.parametrize(("kw", "name"), [({"depth": 1.5}, "depth"),
                                              ({"length": 10}, "length"),
                                              ({"length": 10**6}, "filler")])
    def test_bad_input(self, kw: dict, name: str) -> None:
        args = {"length": 200, "depth": 0.5, **kw}
        with pytest.raises(ValueError, match=name):
            make_sample(TOK, FILLER, args["length"], args["depth"], np.random.default_rng(0))


class TestScores:
    @pytest.mark.parametrize("make", [_bk, _tf], ids=["bk", "transformer"])
    def test_logprob_is_the_full_forward(self, make) -> None:
        model = make()
        s = make_sample(TOK, FILLER, 130, 0.5, np.random.default_rng(2))  # > n_seq = 32
        conts = [s.answer, TOK.encode(" 12345")]
        got = continuation_logprobs(model, s.prompt, [np.asarray(c) for c in conts])
        for c, lp in zip(conts, got, strict=True):
            ids = np.concatenate([s.prompt, c])
            if isinstance(model, LanguageModel):  # full sequence with the state carried
                logits, state = [], None
                for i in range(0, len(ids), 32):
                    lg, _, state = model(torch.tensor(ids[None, i: i + 32]), state=state,
                                         return_state=True)
                    logits.append(lg)
                logits = torch.cat(logits, 1)
            else:
                logits, _ = model(torch.tensor(ids[None]))
            ref = torch.log_softmax(logits[0], -1)[torch.arange(len(s.prompt) - 1, len(ids) - 1),
                                                   torch.tensor(c)].sum()
            assert lp == pytest.approx(float(ref), rel=1e-9, abs=1e-9)

    def test_greedy_matches_generate(self) -> None:
        model = _bk()
        s = make_sample(TOK, FILLER, 110, 0.0, np.random.default_rng(3))
        got = greedy_continuation(model, s.prompt, 5)
        ref = model.generate(torch.tensor(s.prompt[None]), 5, temperature=0)[0, -5:]
        assert got.tolist() == ref.tolist()

    def test_grid(self) -> None:
        rows = evaluate_passkey(_tf(), TOK, FILLER, [110], [0.0, 1.0], n_samples=2,
                                n_candidates=4)
        assert [(r["length"], r["depth"], r["n"]) for r in rows] == [(110, 0.0, 2), (110, 1.0, 2)]
        assert all(0 <= r["rank1"] <= 1 and 1 <= r["mean_rank"] <= 4 for r in rows)


def test_finetune_updates_and_is_finite() -> None:
    model = _bk().float().train()
    before = [p.detach().clone() for p in model.parameters()]
    hist = finetune_passkey(model, TOK, FILLER, FILLER, TrainConfig(lr=1e-3), length=120,
                            steps=2, batch_size=2)
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)
    assert {"passkey_loss", "lm_loss"} <= set(hist[0])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
