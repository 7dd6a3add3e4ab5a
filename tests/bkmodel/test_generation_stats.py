"""Generation speed of ``bk generate`` and the Hugging Face path (issue 18): the timed call
gives the same tokens as ``generate``, the stats add up, and the command prints them to stderr
(``--no-stats`` silences them, ``--json`` writes them)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from bkmodel import cli
from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.checkpoint import model_spec, write_checkpoint
from bkmodel.generation import GenerationStats, timed_generate
from bkmodel.model import LanguageModel
from bkmodel.tokenizer import ByteTokenizer, save_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = ByteTokenizer().vocab_size
KEYS = {"architecture", "device", "batch", "prompt_tokens", "new_tokens", "prefill_s",
        "prefill_tokens_per_s", "decode_s", "decode_steps", "decode_tokens_per_s",
        "ms_per_token", "peak_memory_mib", "memory_growth_mib", "memory_kind"}


def _bk() -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(vocab_size=VOCAB, d_model=16, n_layers=2, n_seq=16, n_channels=4,
                         layer="selective", conv_size=4, ffn="mlp").eval()


def _tf() -> TransformerBaseline:
    torch.manual_seed(0)
    return TransformerBaseline(TransformerConfig(vocab_size=VOCAB, d_model=16, n_layers=2,
                                                 n_heads=2, d_ff=32, max_seq_len=32)).eval()


MODELS = {"resnet-bk": _bk, "transformer": _tf}


@pytest.fixture(scope="module", params=sorted(MODELS))
def run_dir(request, tmp_path_factory):
    """A run directory (checkpoint + byte tokenizer) of a fresh tiny model."""
    m = MODELS[request.param]()
    d = tmp_path_factory.mktemp(request.param)
    write_checkpoint(d / "checkpoint.pt", {"model_spec": model_spec(m), "model": m.state_dict()})
    save_tokenizer(ByteTokenizer(), d / "tokenizer.json")
    return request.param, d


class TestTimedGenerate:
    @pytest.mark.parametrize("arch", sorted(MODELS))
    @pytest.mark.parametrize("temperature", [0.0, 0.9])
    def test_same_tokens_as_generate(self, arch, temperature):
        m = MODELS[arch]()
        ids = torch.randint(0, VOCAB, (2, 5), generator=torch.Generator().manual_seed(1))
        ref = m.generate(ids, 7, temperature=temperature, top_k=20,
                         generator=torch.Generator().manual_seed(2))
        got, st = timed_generate(m, ids, 7, temperature=temperature, top_k=20,
                                 generator=torch.Generator().manual_seed(2))
        assert torch.equal(got, ref)
        assert isinstance(st, GenerationStats) and st.architecture == arch
        assert (st.batch, st.prompt_tokens, st.new_tokens) == (2, 5, 7)
        # ResNet-BK: one decode step per token (the last logits unused); baseline: n - 1
        assert st.decode_steps == (7 if arch == "resnet-bk" else 6)
        assert st.prefill_s > 0 and st.decode_s > 0
        assert st.prefill_tokens_per_s == pytest.approx(2 * 5 / st.prefill_s)
        assert st.decode_tokens_per_s == pytest.approx(2 * 7 / st.decode_s)
        assert st.ms_per_token == pytest.approx(1e3 * st.decode_s / 7)
        assert st.peak_memory_mib > 0 and st.device == "cpu"
        assert st.memory_kind in ("peak_rss", "peak_rss_lifetime")

    @pytest.mark.parametrize("arch", sorted(MODELS))
    def test_no_new_tokens(self, arch):
        _, st = timed_generate(MODELS[arch](), torch.zeros(1, 3, dtype=torch.long), 0)
        assert st.new_tokens == 0 and st.decode_tokens_per_s is None and st.ms_per_token is None
        assert (st.prefill_s is None) == (arch == "transformer")  # the baseline runs no step
        assert "decode 0 tokens" in st.format()

    def test_format(self):
        st = GenerationStats("resnet-bk", "cpu", 1, 12, 200, 0.0031, 12 / 0.0031, 0.53, 200,
                             200 / 0.53, 2.65, 250.1, 15.6, "peak_rss")
        assert st.format() == ("prefill 12 tokens in 3.1 ms (3,871 tokens/s) | decode 200 "
                               "tokens in 530.0 ms: 377.4 tokens/s (2.65 ms/token) | peak RSS "
                               "250.1 MiB (+15.6) [resnet-bk, cpu]")
        assert set(st.to_dict()) == KEYS


class TestCli:
    LINE = re.compile(r"^bk generate: prefill 7 tokens in [\d.]+ m?s \([\d,]+ tokens/s\) \| "
                      r"decode 6 tokens in [\d.]+ m?s: [\d,.]+ tokens/s \([\d.]+ ms/token\) \| "
                      r"peak RSS( \(process lifetime\))? [\d,.]+ MiB( \(\+-?[\d,.]+\))? "
                      r"\[(resnet-bk|transformer), cpu\]$")

    def test_stats_after_the_text_on_stderr(self, run_dir, capsys):
        arch, d = run_dir
        assert cli.main(["generate", str(d), "--max-new-tokens", "6", "--temperature", "0"]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("ROMEO.\n") and "tokens/s" not in out
        lines = err.strip().splitlines()
        assert len(lines) == 1 and self.LINE.match(lines[0]), err
        assert f"[{arch}, cpu]" in lines[0]

    def test_no_stats(self, run_dir, capsys):
        _, d = run_dir
        argv = ["generate", str(d), "--max-new-tokens", "6", "--temperature", "0"]
        assert cli.main(argv) == 0
        text = capsys.readouterr().out
        assert cli.main([*argv, "--no-stats"]) == 0
        out, err = capsys.readouterr()
        assert err == "" and out == text  # the same text, measured or not

    def test_json(self, run_dir, tmp_path, capsys):
        arch, d = run_dir
        path = tmp_path / "stats.json"
        assert cli.main(["generate", str(d), "--max-new-tokens", "6", "--num-samples", "2",
                         "--no-stats", "--json", str(path)]) == 0
        assert capsys.readouterr().err == ""  # --no-stats silences stderr, --json still writes
        doc = json.loads(path.read_text())
        assert doc["command"] == "generate" and doc["checkpoint"] == str(d)
        assert (doc["max_new_tokens"], doc["seed"], doc["top_k"]) == (6, 0, 40)
        assert len(doc["samples"]) == 2
        for s in doc["samples"]:
            assert set(s) == KEYS and s["architecture"] == arch
            assert (s["prompt_tokens"], s["new_tokens"], s["batch"]) == (7, 6, 1)
            assert s["decode_tokens_per_s"] > 0 and s["prefill_s"] > 0

    def test_json_unwritable_is_one_line(self, run_dir, tmp_path, capsys):
        _, d = run_dir
        bad = tmp_path / "no" / "such" / "dir" / "s.json"
        assert cli.main(["generate", str(d), "--max-new-tokens", "2", "--no-stats",
                         "--json", str(bad)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"bk generate: --json {bad}: ")


class TestHfTimedGenerate:
    def test_greedy_equals_project_generate_and_stats(self):
        pytest.importorskip("transformers", reason="transformers not installed (.[hf])")
        import bkmodel.hf as H

        m = _bk()
        hf = H.ResNetBKForCausalLM(H.ResNetBKConfig(config=m.config.to_dict())).eval()
        hf.model = m
        ids = torch.randint(0, VOCAB, (2, 5), generator=torch.Generator().manual_seed(3))
        out, st = H.timed_generate(hf, ids, attention_mask=torch.ones_like(ids),
                                   max_new_tokens=6, do_sample=False, eos_token_id=None,
                                   pad_token_id=0)
        assert torch.equal(out, m.generate(ids, 6, temperature=0))
        assert st.architecture == "resnet-bk (transformers)"
        assert (st.batch, st.prompt_tokens, st.new_tokens, st.decode_steps) == (2, 5, 6, 5)
        assert st.prefill_s > 0 and st.decode_tokens_per_s == pytest.approx(12 / st.decode_s)
        ret, st2 = H.timed_generate(hf, ids, attention_mask=torch.ones_like(ids),
                                    max_new_tokens=3, do_sample=False, eos_token_id=None,
                                    pad_token_id=0, return_dict_in_generate=True)
        assert torch.equal(ret.sequences, out[:, :8]) and st2.new_tokens == 3
        with pytest.raises(TypeError, match="ResNetBKForCausalLM"):
            H.timed_generate(m, ids, max_new_tokens=1)
