"""Hugging Face adapter (``bkmodel/hf.py``): Auto loading, greedy identical to the project's
``generate``, beam search through the reordered recurrent cache, sampling, export, errors."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers", reason="transformers not installed (pip install .[hf])")

import bkmodel.hf as H  # noqa: E402  (registers the Auto classes)
from bkmodel.model import LanguageModel  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(layer: str) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(vocab_size=40, d_model=16, n_layers=2, n_seq=16, n_channels=4,
                         layer=layer, ffn="mlp").eval()


@pytest.fixture(params=["classic", "selective", "green"])
def saved(request, tmp_path):
    m = _model(request.param)
    m.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    return m, AutoModelForCausalLM.from_pretrained(tmp_path)


def _gen(hf, ids, **kw):
    return hf.generate(ids, attention_mask=torch.ones_like(ids), eos_token_id=None,
                       pad_token_id=0, **kw)


def test_auto_loads_and_greedy_matches_project_generate(saved):
    m, hf = saved
    assert isinstance(hf, H.ResNetBKForCausalLM)
    ids = torch.randint(0, 40, (2, 5), generator=torch.Generator().manual_seed(1))
    assert torch.equal(_gen(hf, ids, max_new_tokens=12, do_sample=False),
                       m.generate(ids, 12, temperature=0))


def test_forward_logits_and_cache_continue_the_prompt(saved):
    m, hf = saved
    ids = torch.randint(0, 40, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = hf(ids, use_cache=False).logits
        torch.testing.assert_close(full, m(ids)[0])
        head = hf(ids[:, :6], use_cache=True)
        tail = hf(ids[:, 6:], cache=head.cache)  # three recurrence steps from the state
    assert head.cache.get_seq_length() == 9
    torch.testing.assert_close(tail.logits, full[:, 6:], atol=1e-5, rtol=1e-5)


def test_reorder_cache_permutes_state_rows(saved):
    _, hf = saved
    ids = torch.randint(0, 40, (3, 4), generator=torch.Generator().manual_seed(3))
    perm = torch.tensor([2, 0, 0])
    with torch.no_grad():
        c = hf(ids, use_cache=True).cache
        hf._reorder_cache(c, perm)
        nxt = torch.tensor([[5], [6], [7]])
        got = hf(nxt, cache=c).logits
        ref = hf(torch.cat([ids[perm], nxt], dim=1), use_cache=False).logits[:, -1:]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_beam_search_scores_are_sequence_log_probs(saved):
    """With length_penalty=0 a beam's score is the sum of its tokens' log-probabilities; it
    matches a full forward only if the cache rows followed their beams."""
    _, hf = saved
    ids = torch.randint(0, 40, (1, 4), generator=torch.Generator().manual_seed(4))
    out = _gen(hf, ids, max_new_tokens=5, num_beams=3, num_return_sequences=3,
               do_sample=False, length_penalty=0.0, output_scores=True,
               return_dict_in_generate=True)
    with torch.no_grad():
        logp = hf(out.sequences, use_cache=False).logits.float().log_softmax(-1)
    tok = out.sequences[:, 4:]
    ref = logp[:, 3:-1].gather(-1, tok[..., None])[..., 0].sum(-1)
    torch.testing.assert_close(out.sequences_scores, ref, atol=1e-4, rtol=1e-4)


def test_sampling_runs_and_is_seeded(saved):
    _, hf = saved
    ids = torch.zeros(2, 3, dtype=torch.long)
    torch.manual_seed(5)
    a = _gen(hf, ids, max_new_tokens=6, do_sample=True, top_k=5)
    torch.manual_seed(5)
    b = _gen(hf, ids, max_new_tokens=6, do_sample=True, top_k=5)
    assert torch.equal(a, b) and a.shape == (2, 9) and int(a.max()) < 40


def test_errors(saved, tmp_path):
    m, hf = saved
    with pytest.raises(ValueError, match="padding"):
        hf(torch.zeros(1, 3, dtype=torch.long), attention_mask=torch.tensor([[0, 1, 1]]))
    other = H.ResNetBKForCausalLM(H.ResNetBKConfig(config={**m.config.to_dict(),
                                                           "n_channels": 2}))
    with torch.no_grad():
        c = other(torch.zeros(1, 2, dtype=torch.long), use_cache=True).cache
        with pytest.raises(ValueError, match="another model"):
            hf(torch.zeros(1, 1, dtype=torch.long), cache=c)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text(json.dumps({"model_type": "transformer"}))
    with pytest.raises(ValueError, match="unknown architecture"):
        H.ResNetBKForCausalLM.from_pretrained(tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        H.ResNetBKForCausalLM.from_pretrained(tmp_path / "missing")


def test_save_pretrained_round_trip_and_tokenizer(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bkmodel.tokenizer import train_bpe

    tok = train_bpe(["To be, or not to be, that is the question."] * 20, 300)
    m = LanguageModel(vocab_size=tok.vocab_size, d_model=16, n_layers=1, n_seq=16,
                      n_channels=2, ffn="mlp").eval()
    hf = H.ResNetBKForCausalLM(H.ResNetBKConfig(config=m.config.to_dict()))
    hf.model = m
    hf.save_pretrained(tmp_path)
    H.tokenizer_to_hf(tok).save_pretrained(tmp_path)
    back = AutoModelForCausalLM.from_pretrained(tmp_path)
    hf_tok = AutoTokenizer.from_pretrained(tmp_path)
    ids = hf_tok("To be", return_tensors="pt").input_ids
    assert ids[0].tolist() == tok.encode("To be")
    with torch.no_grad():
        torch.testing.assert_close(back(ids, use_cache=False).logits, m(ids)[0])
    assert LanguageModel.from_pretrained(tmp_path).config == m.config  # one format


def test_export_hf_from_a_run_directory(tmp_path):
    """``bk export-hf RUN OUT``: a run's checkpoint.pt and tokenizer.json become a directory
    that AutoModelForCausalLM / AutoTokenizer load; greedy output unchanged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bkmodel.checkpoint import model_spec, write_checkpoint
    from bkmodel.cli import main
    from bkmodel.tokenizer import save_tokenizer, train_bpe

    tok = train_bpe(["Now is the winter of our discontent."] * 20, 280)
    m = LanguageModel(vocab_size=tok.vocab_size, d_model=16, n_layers=1, n_seq=16,
                      n_channels=2, layer="selective", ffn="mlp").eval()
    run = tmp_path / "run"
    run.mkdir()
    save_tokenizer(tok, run / "tokenizer.json")
    write_checkpoint(run / "checkpoint.pt", {"model_spec": model_spec(m),
                                             "model": m.state_dict(), "tokenizer": ""})
    assert main(["export-hf", str(run), str(tmp_path / "hf")]) == 0
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf.generation_config.eos_token_id == tok.eot_id == hf_tok.eos_token_id
    ids = torch.tensor([tok.encode("Now is")])
    assert torch.equal(_gen(hf, ids, max_new_tokens=5, do_sample=False),
                       m.generate(ids, 5, temperature=0))
