"""Model state (issue 15): chunked forward with the state carried equals one long forward,
gradients through the carried state, document resets, prompts longer than n_seq, bad input."""

from __future__ import annotations

import pytest
import torch

from bkmodel.model import LanguageModel, detach_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V = 31
BASE = dict(vocab_size=V, d_model=16, n_layers=2, n_seq=24, scan_backend="torch")
LAYERS = {
    "classic": dict(layer="classic", n_channels=3, ffn="mlp"),
    "classic-moe": dict(layer="classic", n_channels=3, num_experts=3, top_k=2),
    "selective": dict(layer="selective", n_channels=4, ffn="mlp"),
    "selective-noconv": dict(layer="selective", n_channels=4, ffn="mlp", conv_size=0),
    "selective-conv2": dict(layer="selective", n_channels=4, ffn="mlp", conv_size=2),
    "selective-energies": dict(layer="selective", n_channels=2, ffn="mlp", n_energies=2,
                               selective=False),
}
SPLITS = [(20,), (1, 19), (7, 7, 6), (2, 1, 3, 5, 9), (1,) * 20]


def model(name: str, **kw) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(**{**BASE, **LAYERS[name], "init_std": 0.2, **kw}).double()


def ids(B=2, T=20, seed=0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def chunked(m, x, split, reset=None, state=None, detach=False):
    outs, pos = [], 0
    for n in split:
        r = None if reset is None else reset[:, pos: pos + n]
        logits, _, state = m(x[:, pos: pos + n], state=state, reset=r, return_state=True)
        outs.append(logits)
        state = detach_state(state) if detach else state
        pos += n
    return torch.cat(outs, dim=1), state


def assert_state_close(a, b, atol=1e-10):
    for sa, sb in zip(a, b, strict=True):
        if isinstance(sa, dict):
            assert torch.allclose(sa["g"], sb["g"], atol=atol)
            assert (sa["conv"] is None) == (sb["conv"] is None)
            if sa["conv"] is not None:
                assert torch.allclose(sa["conv"], sb["conv"], atol=atol)
        else:
            assert torch.allclose(sa, sb, atol=atol)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("split", SPLITS, ids=lambda s: "-".join(map(str, s))[:20])
def test_chunked_with_state_equals_one_forward(name, split):
    m = model(name).eval()
    x = ids()
    with torch.no_grad():
        full, _, st_full = m(x, return_state=True)
        got, st = chunked(m, x, split)
    assert torch.allclose(got, full, atol=1e-10, rtol=0), (got - full).abs().max()
    assert_state_close(st, st_full)


@pytest.mark.parametrize("name", ["classic", "selective", "selective-noconv"])
def test_no_state_path_unchanged(name):
    # state=None, reset=None, return_state=False is the old code path; return_state adds a
    # state and changes nothing else
    m = model(name).eval()
    x = ids()
    with torch.no_grad():
        a, _ = m(x)
        b, _, _ = m(x, return_state=True)
        c, _, _ = m(x, state=[None] * 2, return_state=True)
    assert torch.equal(a, b)
    assert torch.allclose(a, c, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["classic", "selective", "selective-noconv"])
def test_gradients_through_carried_state_equal_one_forward(name):
    m = model(name)
    x, y = ids(), ids(seed=1)

    def grads(split):
        m.zero_grad()
        if split is None:
            logits, _ = m(x)
        else:
            logits, _ = chunked(m, x, split)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        loss.backward()
        return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    ref = grads(None)
    for split in [(7, 7, 6), (1, 19)]:
        got = grads(split)
        assert got.keys() == ref.keys()
        for n in ref:
            assert torch.allclose(got[n], ref[n], atol=1e-10, rtol=1e-8), n


@pytest.mark.parametrize("name", ["classic", "selective", "selective-noconv"])
def test_gradient_wrt_initial_state_matches_naive_scan(name):
    # d loss / d state through the torch scan's exact adjoint = autograd through the naive loop
    x, y = ids(T=12), ids(T=12, seed=2)
    m_t = model(name)
    m_n = model(name, scan_backend="naive")
    m_n.load_state_dict(m_t.state_dict())
    with torch.no_grad():
        _, _, st0 = m_t(ids(T=9, seed=5), return_state=True)

    def run(m):
        st = [{k: (None if v is None else v.clone().requires_grad_(True)) for k, v in s.items()}
              if isinstance(s, dict) else s.clone().requires_grad_(True) for s in st0]
        logits, _, new = m(x, state=st, return_state=True)
        g_last = new[-1]["g"] if isinstance(new[-1], dict) else new[-1]
        loss = (torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
                + g_last.abs().sum())
        loss.backward()
        leaves = []
        for s in st:
            leaves += [s["g"], s["conv"]] if isinstance(s, dict) else [s]
        return [None if t is None else t.grad for t in leaves], \
            {n: p.grad for n, p in m.named_parameters() if p.grad is not None}

    gs_t, pg_t = run(m_t)
    gs_n, pg_n = run(m_n)
    for a, b in zip(gs_t, gs_n, strict=True):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert a.abs().max() > 0
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-8)
    for n in pg_n:
        assert torch.allclose(pg_t[n], pg_n[n], atol=1e-10, rtol=1e-8), n


def test_detached_state_same_values_no_gradient_into_the_past():
    m = model("selective")
    x = ids()
    logits, st = chunked(m, x, (10, 10), detach=True)
    with torch.no_grad():
        full, _ = m(x)
    assert torch.allclose(logits, full, atol=1e-10)
    # truncated BPTT: the second chunk's loss reaches no input of the first chunk
    emb = m.wte(x).detach().requires_grad_(True)
    m.wte.forward = lambda _ids, e=emb: e
    _, _, st1 = m(x[:, :10], return_state=True)
    st1 = detach_state(st1)
    assert all(not s["g"].requires_grad and not s["conv"].requires_grad for s in st1)
    m.wte.forward = lambda _ids, e=emb: e[:, 10:]
    logits2, _ = m(x[:, 10:], state=st1)
    logits2.sum().backward()
    assert emb.grad is None or float(emb.grad[:, :10].abs().max()) == 0.0
    assert float(emb.grad[:, 10:].abs().max()) > 0.0


# -- document resets --------------------------------------------------------------------------
RESET_LAYERS = ["classic", "classic-moe", "selective", "selective-noconv", "selective-conv2",
                "selective-energies"]


def doc_reset(T, starts_per_row):
    r = torch.zeros(len(starts_per_row), T, dtype=torch.bool)
    for i, starts in enumerate(starts_per_row):
        r[i, list(starts)] = True
    return r


@pytest.mark.parametrize("name", RESET_LAYERS)
def test_reset_equals_separate_documents(name):
    m = model(name).eval()
    T = 20
    x = ids(T=T)
    starts = [(0, 5, 6, 13), (9,)]  # row 0: documents of 5, 1, 7, 7 tokens; row 1: 9 + 11
    reset = doc_reset(T, starts)
    with torch.no_grad():
        got, _ = m(x, reset=reset)
        for row, st in enumerate(starts):
            bounds = sorted(set((0,) + st)) + [T]
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                ref, _ = m(x[row: row + 1, a:b])
                assert torch.allclose(got[row, a:b], ref[0], atol=1e-10, rtol=0), (row, a, b)


@pytest.mark.parametrize("name", RESET_LAYERS)
def test_reset_without_boundaries_changes_nothing(name):
    m = model(name).eval()
    x = ids()
    with torch.no_grad():
        a, _ = m(x)
        b, _ = m(x, reset=torch.zeros_like(x, dtype=torch.bool))
    assert torch.allclose(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["classic", "selective", "selective-conv2"])
@pytest.mark.parametrize("split", [(7, 7, 6), (1, 19), (5, 1, 14)], ids=str)
def test_reset_with_carried_state_equals_one_forward(name, split):
    # boundaries right at, just after and inside chunk edges (inside the convolution window)
    m = model(name).eval()
    x = ids()
    reset = doc_reset(20, [(1, 5, 7, 8, 15), (6, 14, 19)])
    with torch.no_grad():
        full, _, st_full = m(x, reset=reset, return_state=True)
        got, st = chunked(m, x, split, reset=reset)
    assert torch.allclose(got, full, atol=1e-10, rtol=0)
    assert_state_close(st, st_full)


@pytest.mark.parametrize("name", ["classic", "selective"])
def test_reset_at_first_token_forgets_the_carried_state(name):
    m = model(name).eval()
    x = ids()
    with torch.no_grad():
        _, _, st = m(ids(seed=7), return_state=True)
        fresh, _ = m(x)
        reset = doc_reset(20, [(0,), (0,)])
        got, _ = m(x, state=st, reset=reset)
        carried, _ = m(x, state=st)
    assert torch.allclose(got, fresh, atol=1e-10, rtol=0)
    assert not torch.allclose(carried, fresh, atol=1e-6)  # negative control


def test_reset_gradients_finite_and_none_across_boundary():
    # with a reset at t, the loss at positions >= t has zero gradient wrt tokens' embeddings
    # before t (checked through the input embedding by an influence test)
    m = model("selective")
    x = ids(B=1)
    reset = doc_reset(20, [(8,)])
    emb = m.wte(x).detach().requires_grad_(True)
    m.wte.forward = lambda _ids, e=emb: e  # feed the embedding leaf
    logits, _ = m(x, reset=reset)
    logits[0, 8:].sum().backward()
    assert float(emb.grad[0, :8].abs().max()) == 0.0
    assert float(emb.grad[0, 8:].abs().max()) > 0.0


# -- generation ---------------------------------------------------------------------------------
def test_prefill_of_a_prompt_longer_than_n_seq_is_chunked_and_exact():
    m = model("selective").eval()
    x = ids(B=2, T=60)  # n_seq = 24
    with torch.no_grad():
        states = m._prefill(x)
        ref, _ = chunked(m, x, (24, 24, 12))
    assert torch.allclose(states.pop("logits"), ref[:, -1], atol=1e-10)
    out = m.generate(x, 3, temperature=0)
    assert out.shape == (2, 63)


# -- bad input ------------------------------------------------------------------------------------
def test_bad_state_and_reset_raise_value_errors_naming_them():
    c, s = model("classic"), model("selective")
    x = ids()
    with torch.no_grad():
        _, _, st_c = c(x, return_state=True)
        _, _, st_s = s(x, return_state=True)
    with pytest.raises(ValueError, match="state must be a list of n_layers=2"):
        c(x, state=st_c[:1])
    with pytest.raises(ValueError, match="state must be a list"):
        c(x, state=st_c[0])
    with pytest.raises(ValueError, match=r"state\[1\] must have shape"):
        c(x, state=[st_c[0], st_c[1][:1]])
    with pytest.raises(ValueError, match=r"state\[0\] must be a complex tensor"):
        c(x, state=[st_c[0].real, st_c[1]])
    with pytest.raises(ValueError, match=r"state\[0\] must be on the device"):
        c(x, state=[st_c[0].to("meta"), st_c[1]])
    with pytest.raises(ValueError, match=r"state\[0\] must be a dict"):
        s(x, state=[st_s[0]["g"], st_s[1]])
    with pytest.raises(ValueError, match=r"state\[1\]\['g'\] must have shape"):
        s(x, state=[st_s[0], {"g": st_s[1]["g"][:, :2], "conv": None}])
    with pytest.raises(ValueError, match=r"state\[0\]\['conv'\] must have shape"):
        s(x, state=[{"g": st_s[0]["g"], "conv": st_s[0]["conv"][..., :1]}, st_s[1]])
    with pytest.raises(ValueError, match=r"reset must have the shape of input_ids"):
        s(x, reset=torch.zeros(2, 19, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"reset must be a bool tensor"):
        s(x, reset=torch.zeros(2, 20))


def test_data_side_resets_drive_the_model_reset():
    # bkmodel.data.batch_resets on a stream of EOT-separated documents: the model's logits
    # on each document equal those of the document alone
    from bkmodel.data import batch_from_stream, batch_resets

    eot = V - 1
    docs = [ids(B=1, T=n, seed=n)[0] % eot for n in (6, 3, 9)]
    stream = torch.cat([torch.cat([d, torch.tensor([eot])]) for d in docs]).numpy()
    rows = torch.from_numpy(batch_from_stream(stream, [0, 2], 18))[:, :-1]
    reset = torch.from_numpy(batch_resets(stream, [0, 2], 18, eot))
    m = model("selective").eval()
    with torch.no_grad():
        got, _ = m(rows, reset=reset)
        ref, _ = m(torch.from_numpy(stream[7:18])[None].long())  # docs 2 and 3 start at 7, 11
        alone, _ = m(torch.from_numpy(stream[11:18])[None].long())
    assert not torch.allclose(got[0, 11:18], ref[0, 4:], atol=1e-6)  # leak without reset
    assert torch.allclose(got[0, 11:18], alone[0], atol=1e-10)
    assert torch.allclose(got[1, 9:16], alone[0], atol=1e-10)


# -- streamed evaluation (bk eval --stream) -------------------------------------------------------
def _stream(n=70, seed=3, eot=None, doc_len=None):
    t = torch.randint(0, V - 1, (n,), generator=torch.Generator().manual_seed(seed)).numpy()
    if eot is not None:
        t[doc_len - 1::doc_len] = eot
    return t.astype("int32")


def test_evaluate_carried_is_independent_of_the_chunk_length_and_exact():
    from bkmodel.evaluate import evaluate_carried

    m = model("selective")
    t = _stream(n=24)  # 23 predictions: one chunk holds them all
    with torch.no_grad():
        logits, _ = m(torch.from_numpy(t[:-1]).long()[None])
    ref = torch.nn.functional.cross_entropy(logits[0], torch.from_numpy(t[1:]).long())
    for chunk in (23, 5, 1):  # (the evaluation sums a float32 cross-entropy)
        r = evaluate_carried(m, t, chunk)
        assert r["tokens"] == 23 and r["mode"] == "carried"
        assert r["loss"] == pytest.approx(float(ref), rel=1e-6)
    long = _stream(n=200)  # longer than n_seq = 24
    a, b = evaluate_carried(m, long, 24), evaluate_carried(m, long, 7)
    assert a["tokens"] == 199 and a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    assert evaluate_carried(m, long, 24, max_tokens=50)["tokens"] == 50


def test_evaluate_carried_resets_score_each_document_alone():
    from bkmodel.evaluate import evaluate_carried

    eot, L = V - 1, 10
    t = _stream(n=41, eot=eot, doc_len=L)  # 4 documents of 9 tokens + EOT, then one token
    m = model("classic")
    r = evaluate_carried(m, t, 7, eot_id=eot)
    total = 0.0
    with torch.no_grad():
        for s in range(0, 40, L):  # each document with its EOT, predicting the next token
            x = torch.from_numpy(t[s: s + L]).long()[None]
            logits, _ = m(x)
            y = torch.from_numpy(t[s + 1: s + L + 1]).long()
            total += float(torch.nn.functional.cross_entropy(logits[0], y, reduction="sum"))
    assert r["resets"] and r["loss"] == pytest.approx(total / 40, rel=1e-6)
    assert evaluate_carried(m, t, 7)["loss"] != pytest.approx(r["loss"], rel=1e-6)


def test_evaluate_sliding_scores_each_token_once_with_up_to_window_context():
    from bkmodel.baseline import TransformerBaseline, TransformerConfig
    from bkmodel.evaluate import evaluate_long, evaluate_sliding

    torch.manual_seed(0)
    tf = TransformerBaseline(TransformerConfig(vocab_size=V, d_model=16, n_layers=1,
                                               n_heads=2, d_ff=32, max_seq_len=8)).double()
    t = _stream(n=30)
    W = 8
    brute = 0.0  # stride 1: token j scored with exactly min(j, W) tokens of context
    with torch.no_grad():
        for j in range(1, 30):
            x = torch.from_numpy(t[max(0, j - W): j]).long()[None]
            logits, _ = tf(x)
            brute += float(torch.nn.functional.cross_entropy(
                logits[0, -1:], torch.from_numpy(t[j: j + 1]).long()))
    r1 = evaluate_sliding(tf, t, W, stride=1)
    assert r1["tokens"] == 29 and r1["loss"] == pytest.approx(brute / 29, rel=1e-6)
    # stride = window is the non-overlapping evaluation; the default stride is window / 2
    rw = evaluate_sliding(tf, t, W, stride=W)
    assert rw["tokens"] == 29 and rw["stride"] == W
    assert evaluate_sliding(tf, t, W)["stride"] == 4
    assert evaluate_long(tf, t, W)["mode"] == "sliding"
    assert evaluate_long(model("classic"), t, W)["mode"] == "carried"
    with pytest.raises(ValueError, match="stride"):
        evaluate_sliding(tf, t, W, stride=9)
    with pytest.raises(ValueError, match="chunk_len"):
        from bkmodel.evaluate import evaluate_carried
        evaluate_carried(model("classic"), t, 0)


def test_cli_eval_stream(tmp_path, capsys):
    from bkmodel import cli
    from bkmodel.presets import TrainConfig
    from bkmodel.train import train

    for kind, word in (("bk", "state carried"), ("transformer", "sliding window")):
        out = tmp_path / kind
        train(TrainConfig.from_preset("ci", model=kind, max_steps=2), out, progress=False)
        capsys.readouterr()
        js = tmp_path / f"{kind}.json"
        assert cli.main(["eval", str(out), "--stream", "--max-tokens", "200", "--splits",
                         "validation", "--stream-tokens", "5000", "--json", str(js)]) == 0
        text = capsys.readouterr().out
        assert word in text and "validation" in text, text
        import json
        res = json.loads(js.read_text())
        assert res["stream"] and res["validation"]["tokens"] == 200
