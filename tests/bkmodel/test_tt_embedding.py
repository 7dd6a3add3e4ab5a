"""bkmodel.tt_embedding: the TT lookup against the dense reconstruction of its cores, the
factorisation, counting, the models built with ``embedding="tt"`` and argument errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.config import ModelConfig
from bkmodel.model import LanguageModel
from bkmodel.tt_embedding import TTEmbedding, factorize, make_token_embedding

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_dense(emb: TTEmbedding) -> torch.Tensor:
    """W[i, j] from the definition, entry by entry over the mixed-radix digits (float64)."""
    cores = [c.detach().double() for c in emb.cores]
    if emb.phases is not None:
        cores = [torch.polar(c, p.detach().double())
                 for c, p in zip(cores, emb.phases, strict=True)]
    vf, df = emb.vocab_factors, emb.dim_factors
    W = torch.zeros(emb.num_embeddings, emb.embedding_dim, dtype=torch.float64)
    for i in range(emb.num_embeddings):
        di = [(i // math.prod(vf[k + 1:])) % vf[k] for k in range(len(vf))]
        for j in range(emb.embedding_dim):
            dj = [(j // math.prod(df[k + 1:])) % df[k] for k in range(len(df))]
            m = cores[0][di[0], :, dj[0], :]
            for k in range(1, len(cores)):
                m = m @ cores[k][di[k], :, dj[k], :]
            W[i, j] = m[0, 0].real
    return W


@st.composite
def tt_cases(draw):
    n = draw(st.integers(1, 3))
    vf = tuple(draw(st.lists(st.integers(1, 5), min_size=n, max_size=n)))
    df = tuple(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    V = draw(st.integers(1, math.prod(vf)))  # padding when V < prod
    d = draw(st.integers(1, math.prod(df)))
    rank = draw(st.integers(1, 4))
    phase = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    ids = draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=12))
    return V, d, rank, vf, df, phase, seed, ids


class TestLookup:
    @settings(max_examples=60, deadline=None)
    @given(tt_cases())
    def test_lookup_equals_dense_reconstruction(self, case):
        V, d, rank, vf, df, phase, seed, ids = case
        torch.manual_seed(seed)
        emb = TTEmbedding(V, d, rank, vocab_factors=vf, dim_factors=df, phase=phase).double()
        x = torch.tensor(ids)
        got = emb(x)
        W = emb.dense_weight()
        assert W.shape == (V, d) and got.shape == (len(ids), d)
        scale = float(W.detach().abs().max()) + 1e-300
        tol = 64 * torch.finfo(torch.float64).eps * scale * rank ** len(vf)
        torch.testing.assert_close(got, W[x], rtol=0, atol=tol)
        torch.testing.assert_close(W, reference_dense(emb), rtol=0, atol=tol)

    def test_batched_shapes_and_float32(self):
        torch.manual_seed(0)
        emb = TTEmbedding(4096, 128, rank=8)
        x = torch.randint(0, 4096, (3, 5, 7))
        out = emb(x)
        assert out.shape == (3, 5, 7, 128) and out.dtype == torch.float32
        torch.testing.assert_close(out, emb.dense_weight()[x], rtol=1e-5, atol=1e-7)

    def test_gradients_reach_every_core(self):
        torch.manual_seed(0)
        emb = TTEmbedding(100, 24, rank=3, phase=True).double()
        emb(torch.arange(100)).pow(2).sum().backward()
        for p in emb.parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0)

    def test_init_std(self):
        torch.manual_seed(0)
        for phase in (False, True):
            w = TTEmbedding(4096, 128, 8, phase=phase).dense_weight().detach()
            assert 0.012 < float(w.std()) < 0.03


class TestCounting:
    def test_params_and_compression(self):
        emb = TTEmbedding(4096, 128, rank=8)
        # (16,1,4,8) + (16,8,4,8) + (16,8,8,1)
        assert emb.num_params() == 512 + 4096 + 1024
        assert math.isclose(emb.compression(), 4096 * 128 / 5632)
        assert TTEmbedding(4096, 128, rank=8, phase=True).num_params() == 2 * 5632

    def test_lookup_flops(self):
        # d = (4, 4, 8), r = 8: 2*4*8*4*8 + 2*16*8*8*1
        assert TTEmbedding(4096, 128, rank=8).lookup_flops() == 2048 + 2048
        assert TTEmbedding(4096, 128, rank=8, phase=True).lookup_flops() == 4 * 4096

    @pytest.mark.parametrize("n, k, want", [(4096, 3, (16, 16, 16)), (8192, 3, (16, 16, 32)),
                                            (128, 3, (4, 4, 8)), (1024, 3, (8, 8, 16)),
                                            (1021, 2, (32, 32)), (50257, 3, (37, 37, 37)),
                                            (1, 2, (1, 1)), (7, 1, (7,))])
    def test_factorize(self, n, k, want):
        got = factorize(n, k)
        assert got == want and math.prod(got) >= n


class TestModels:
    def test_bk_tt_model_untied_trains_and_roundtrips(self, tmp_path):
        torch.manual_seed(0)
        m = LanguageModel(vocab_size=64, d_model=16, n_layers=1, n_seq=8, n_channels=2,
                          embedding="tt", tt_rank=3, scan_backend="torch")
        assert isinstance(m.wte, TTEmbedding)
        assert m.lm_head.weight is not getattr(m.wte, "weight", None)  # untied
        ids = torch.randint(0, 64, (2, 8))
        _, loss = m(ids, ids)
        loss.backward()
        assert m.wte.cores[1].grad is not None
        m.save_pretrained(tmp_path / "tt")
        m2 = LanguageModel.from_pretrained(tmp_path / "tt")
        assert m2.config.embedding == "tt" and m2.config.tt_rank == 3
        with torch.no_grad():
            torch.testing.assert_close(m2(ids)[0], m(ids)[0])

    def test_dense_default_unchanged(self):
        m = LanguageModel(vocab_size=64, d_model=16, n_layers=1, n_seq=8, n_channels=2)
        assert type(m.wte) is torch.nn.Embedding and m.lm_head.weight is m.wte.weight

    def test_transformer_tt(self):
        torch.manual_seed(0)
        cfg = TransformerConfig(vocab_size=64, d_model=16, n_layers=1, n_heads=2, d_ff=32,
                                embedding="tt_phase", tt_rank=2)
        m = TransformerBaseline(cfg)
        assert isinstance(m.embed, TTEmbedding) and m.embed.phase
        assert m.lm_head is not None
        logits, loss = m(torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 5, dtype=torch.long))
        assert logits.shape == (1, 5, 64) and loss.ndim == 0
        dense = TransformerBaseline(TransformerConfig(vocab_size=64, d_model=16, n_layers=1,
                                                      n_heads=2, d_ff=32))
        assert dense.lm_head is None and dense.num_params() == dense.config.param_count()


class TestBadArguments:
    @pytest.mark.parametrize("rank", [0, -3])
    def test_model_config_rank(self, rank):
        with pytest.raises(ValueError, match="tt_rank"):
            ModelConfig(embedding="tt", tt_rank=rank)

    def test_model_config_rank_type(self):
        with pytest.raises(TypeError, match="tt_rank"):
            ModelConfig(tt_rank=2.0)

    def test_model_config_embedding(self):
        with pytest.raises(ValueError, match="embedding"):
            ModelConfig(embedding="holographic")

    @pytest.mark.parametrize("kw, match", [(dict(tt_rank=0), "tt_rank"),
                                           (dict(embedding="sparse"), "embedding")])
    def test_transformer_config(self, kw, match):
        with pytest.raises(ValueError, match=match):
            TransformerConfig(**kw)

    @pytest.mark.parametrize("kw, match", [
        (dict(rank=0), "rank"), (dict(num_embeddings=0), "num_embeddings"),
        (dict(embedding_dim=-1), "embedding_dim"),
        (dict(vocab_factors=(4, 4)), "vocab_factors"),
        (dict(vocab_factors=(8, 8, 0)), "vocab_factors"),
        (dict(vocab_factors=(8, 8), dim_factors=(4, 4, 2)), "same length"),
        (dict(init_std=0.0), "init_std"),
    ])
    def test_tt_embedding(self, kw, match):
        args = dict(num_embeddings=64, embedding_dim=32, rank=2) | kw
        with pytest.raises(ValueError, match=match):
            TTEmbedding(**args)

    def test_ids(self):
        emb = TTEmbedding(10, 4, 2)
        with pytest.raises(IndexError, match=r"\[0, 10\)"):
            emb(torch.tensor([10]))
        with pytest.raises(IndexError):
            emb(torch.tensor([-1]))
        with pytest.raises(TypeError, match="integer"):
            emb(torch.tensor([1.0]))

    def test_factorize_and_kind(self):
        with pytest.raises(ValueError, match="n must be"):
            factorize(0, 3)
        with pytest.raises(ValueError, match="k"):
            factorize(8, 0)
        with pytest.raises(ValueError, match="embedding"):
            make_token_embedding("htt", 8, 4)
