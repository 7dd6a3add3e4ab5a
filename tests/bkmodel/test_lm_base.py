"""bkmodel.lm_base: the input checks, sampling and checkpoint format both language models share.

Every behaviour is checked on ResNet-BK (:class:`LanguageModel`) and on the Transformer
baseline side by side: the same bad input gives the same message, the same checkpoint layout
round-trips, and the baseline's pre-shared checkpoints (flat ``config.json``, no checksum)
still load.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import save_model

from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.config import ModelConfig
from bkmodel.lm_base import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    check_generate_args,
    check_ids,
    sample,
)
from bkmodel.model import LanguageModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V = 37
BK = dict(vocab_size=V, d_model=16, n_layers=2, n_seq=48, n_channels=3)
TF = TransformerConfig(vocab_size=V, d_model=16, n_layers=2, n_heads=2, d_ff=24, max_seq_len=12)
MODELS = {
    "bk": lambda: LanguageModel(**BK),
    "transformer": lambda: TransformerBaseline(TF),
}


def make(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    return MODELS[kind]()


def ids(B=2, T=10, seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def error_of(fn) -> tuple[type, str]:
    with pytest.raises((TypeError, ValueError)) as info:
        fn()
    return info.type, str(info.value)


# ------------------------------------------------------------------------------------------
# input checks
# ------------------------------------------------------------------------------------------
def _with(x, pos, value):
    x = x.clone()
    x[pos] = value
    return x


BAD_INPUT = {
    "float": (lambda: ids().float(), TypeError, "input_ids must be an integer tensor"),
    "list": (lambda: [[1, 2, 3]], TypeError, "input_ids must be a torch.Tensor"),
    "1-D": (lambda: torch.zeros(5, dtype=torch.long), ValueError, r"shape \(B, T\)"),
    "empty-T": (lambda: torch.zeros(2, 0, dtype=torch.long), ValueError, "non-empty"),
    "empty-B": (lambda: torch.zeros(0, 3, dtype=torch.long), ValueError, "non-empty"),
    "id=V": (lambda: _with(ids(), (0, 3), V), ValueError,
             rf"input_ids must lie in \[0, vocab_size={V}\), got id {V}$"),
    "id=-1": (lambda: _with(ids(), (1, 0), -1), ValueError,
              rf"input_ids must lie in \[0, vocab_size={V}\), got id -1$"),
    "id=-100": (lambda: _with(ids(), (0, 0), -100), ValueError, "got id -100$"),
}


class TestCheckIds:
    @pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
    def test_same_error_for_both_models(self, case):
        make_x, exc, match = BAD_INPUT[case]
        bk = error_of(lambda: make("bk")(make_x()))
        tf = error_of(lambda: make("transformer")(make_x()))
        assert bk == tf and bk[0] is exc
        with pytest.raises(exc, match=match):
            check_ids(make_x(), V, None)

    @pytest.mark.parametrize("bad,msg", [
        (V, rf"targets must lie in \[0, vocab_size={V}\) or be -100 \(ignored\), got id {V}$"),
        (-1, "got id -1$"),
    ])
    def test_targets_same_error_for_both_models(self, bad, msg):
        x, t = ids(), _with(ids(seed=1), (1, 4), bad)
        bk = error_of(lambda: make("bk")(x, t))
        tf = error_of(lambda: make("transformer")(x, t))
        assert bk == tf and bk[0] is ValueError
        with pytest.raises(ValueError, match=msg):
            check_ids(t, V, None, "targets", allow_ignore=True)

    def test_ignored_targets_accepted_by_both(self):
        x, t = ids(), _with(ids(seed=1), (0, slice(0, 4)), -100)
        for kind in MODELS:
            _, loss = make(kind)(x, t)
            assert torch.isfinite(loss), kind

    @pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
    def test_narrow_integer_ids_same_logits_as_long(self, dtype):
        # ResNet-BK always took any integer dtype; the baseline now does too (cast to long)
        x = ids()
        for kind in MODELS:
            m = make(kind).eval()
            assert torch.equal(m(x.to(dtype))[0], m(x)[0]), kind

    def test_length_bound(self):
        with pytest.raises(ValueError, match=r"T=49 > n_seq=48 \(config.n_seq\)"):
            make("bk")(ids(T=49))
        check_ids(ids(T=49), V, None)  # no bound
        # RoPE has no position table: the baseline's forward takes any length (max_seq_len
        # crops generate's context only), as before the shared check
        logits, _ = make("transformer")(ids(T=TF.max_seq_len + 5))
        assert logits.shape == (2, TF.max_seq_len + 5, V)

    def test_bk_method_is_a_thin_wrapper(self):
        m = make("bk")
        x = _with(ids(), (0, 0), V)
        assert error_of(lambda: m._check_ids(x)) == error_of(lambda: check_ids(x, V, 48))


# ------------------------------------------------------------------------------------------
# generation
# ------------------------------------------------------------------------------------------
BAD_ARGS = [
    ({"max_new_tokens": -1}, "max_new_tokens must be an int >= 0, got -1"),
    ({"max_new_tokens": 2.0}, "max_new_tokens"),
    ({"max_new_tokens": True}, "max_new_tokens"),
    ({"temperature": -1.0}, "temperature must be a finite number >= 0, got -1.0"),
    ({"temperature": float("inf")}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_k": 0}, "top_k must be None or an int >= 1, got 0"),
    ({"top_k": True}, "top_k"),
]


class TestGenerateArgs:
    @pytest.mark.parametrize("kw,match", BAD_ARGS, ids=[str(k) for k, _ in BAD_ARGS])
    def test_same_error_for_both_models(self, kw, match):
        args = {"max_new_tokens": 2, **kw}
        bk = error_of(lambda: make("bk").generate(ids(B=1, T=3), **args))
        tf = error_of(lambda: make("transformer").generate(ids(B=1, T=3), **args))
        assert bk == tf and bk[0] is ValueError and match in bk[1]
        full = {"temperature": 1.0, "top_k": None, **args}
        with pytest.raises(ValueError, match=match.split()[0]):
            check_generate_args(full["max_new_tokens"], full["temperature"], full["top_k"])

    def test_valid(self):
        check_generate_args(0, 0, None)
        check_generate_args(5, 0.7, 3)


class TestSample:
    def logits(self, seed=0):
        return torch.randn(4, V, generator=torch.Generator().manual_seed(seed))

    def test_greedy_is_argmax_and_top_k_1_is_greedy(self):
        lg = self.logits()
        greedy = sample(lg, 0, None)
        assert greedy.shape == (4, 1) and torch.equal(greedy[:, 0], lg.argmax(-1))
        g = torch.Generator().manual_seed(0)
        assert torch.equal(sample(lg, 1.0, 1, g), greedy)

    def test_top_k_draws_only_the_k_largest(self):
        lg = self.logits(1)
        top = lg.topk(3, dim=-1).indices
        g = torch.Generator().manual_seed(2)
        for _ in range(50):
            nxt = sample(lg, 5.0, 3, g)  # high temperature: the tail would be drawn often
            assert bool((nxt == top).any(-1).all())

    def test_seeded_and_float32(self):
        lg = self.logits(2).to(torch.bfloat16)
        a = sample(lg, 0.8, None, torch.Generator().manual_seed(3))
        b = sample(lg, 0.8, None, torch.Generator().manual_seed(3))
        assert torch.equal(a, b) and a.dtype == torch.long


def reference_baseline_generate(m, x, n, temperature, top_k):
    """The baseline's generation loop as it was written before the shared sampler:
    forward over the cropped context, divide by the temperature, then mask to the top k."""
    out = x
    for _ in range(n):
        logits = m(out[:, -m.config.max_seq_len:])[0][:, -1, :].float()
        if temperature == 0:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1)
        out = torch.cat([out, nxt], dim=1)
    return out


class TestGeneration:
    def test_greedy_bk_matches_full_forward(self):
        m = make("bk").eval()
        out = m.generate(ids(T=5), 12, temperature=0)
        ref = ids(T=5)
        with torch.no_grad():
            for _ in range(12):
                nxt = m(ref)[0][:, -1].argmax(-1, keepdim=True)
                ref = torch.cat([ref, nxt], dim=1)
        assert torch.equal(out, ref)

    def test_greedy_baseline_unchanged(self):
        # beyond max_seq_len (12): the cropped context is part of the behaviour
        m = make("transformer").eval()
        with torch.no_grad():
            ref = reference_baseline_generate(m, ids(T=5), 20, 0, None)
        assert torch.equal(m.generate(ids(T=5), 20, temperature=0), ref)

    @pytest.mark.parametrize("top_k", [None, 5])
    def test_seeded_sampling_baseline_unchanged(self, top_k):
        m = make("transformer").eval()
        torch.manual_seed(7)
        with torch.no_grad():
            ref = reference_baseline_generate(m, ids(T=5), 10, 0.8, top_k)
        torch.manual_seed(7)
        assert torch.equal(m.generate(ids(T=5), 10, temperature=0.8, top_k=top_k), ref)

    @pytest.mark.parametrize("kind", list(MODELS))
    def test_generator_and_training_mode(self, kind):
        m = make(kind).train()
        a = m.generate(ids(T=3), 6, generator=torch.Generator().manual_seed(1))
        b = m.generate(ids(T=3), 6, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, b) and a.shape == (2, 9) and m.training


# ------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------
def write_legacy_baseline(model: TransformerBaseline, directory) -> None:
    """A checkpoint as TransformerBaseline.save_pretrained wrote it before the shared format:
    a flat config.json (indent 2, no class / format_version / checksum) and safetensors'
    save_model (no metadata)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(
        json.dumps({"model_type": "transformer", **asdict(model.config)}, indent=2))
    save_model(model, str(directory / "model.safetensors"))


def assert_same_model(a, b):
    assert a.config == b.config and type(a) is type(b)
    for (k, x), (j, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert k == j and torch.equal(x, y), k
    a.eval(), b.eval()
    assert torch.equal(a(ids())[0], b(ids())[0])


class TestCheckpoints:
    @pytest.mark.parametrize("kind", list(MODELS))
    def test_round_trip(self, kind, tmp_path):
        m = make(kind, seed=3)
        m.save_pretrained(tmp_path / "ck")
        assert_same_model(m, type(m).from_pretrained(tmp_path / "ck"))
        assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]

    @pytest.mark.parametrize("kind,model_type,cls_name", [
        ("bk", "resnet-bk", "LanguageModel"),
        ("transformer", "transformer", "TransformerBaseline"),
    ])
    def test_config_json_layout(self, kind, model_type, cls_name, tmp_path):
        m = make(kind)
        m.save_pretrained(tmp_path)
        text = (tmp_path / CONFIG_NAME).read_text()
        meta = json.loads(text)
        assert list(meta) == ["model_type", "class", "format_version", "weights_sha256", "config"]
        assert (meta["model_type"], meta["class"], meta["format_version"]) == (
            model_type, cls_name, FORMAT_VERSION)
        assert text == json.dumps(meta, indent=1)  # the layout of existing BK checkpoints
        assert type(m.config).from_dict(meta["config"]) == m.config

    def test_bk_tied_head_stored_once(self, tmp_path):
        from safetensors.torch import load_file

        make("bk").save_pretrained(tmp_path)
        keys = set(load_file(str(tmp_path / WEIGHTS_NAME)))
        assert "wte.weight" in keys and "lm_head.weight" not in keys
        loaded = LanguageModel.from_pretrained(tmp_path)
        assert loaded.lm_head.weight is loaded.wte.weight

    @pytest.mark.parametrize("kind", list(MODELS))
    def test_corrupt_weights_detected_by_checksum(self, kind, tmp_path):
        m = make(kind)
        m.save_pretrained(tmp_path)
        data = bytearray((tmp_path / WEIGHTS_NAME).read_bytes())
        data[-5] ^= 0x01  # one bit of one float: still a valid safetensors file
        (tmp_path / WEIGHTS_NAME).write_bytes(bytes(data))
        with pytest.raises(ValueError, match="corrupt.*SHA-256 mismatch"):
            type(m).from_pretrained(tmp_path)

    def test_baseline_weights_of_another_model_rejected(self, tmp_path):
        make("transformer", seed=0).save_pretrained(tmp_path / "a")
        make("transformer", seed=1).save_pretrained(tmp_path / "b")
        (tmp_path / "b" / WEIGHTS_NAME).replace(tmp_path / "a" / WEIGHTS_NAME)
        with pytest.raises(ValueError, match="does not belong"):
            TransformerBaseline.from_pretrained(tmp_path / "a")

    @pytest.mark.parametrize("name", [CONFIG_NAME, WEIGHTS_NAME])
    def test_baseline_missing_file(self, name, tmp_path):
        make("transformer").save_pretrained(tmp_path)
        (tmp_path / name).unlink()
        with pytest.raises(FileNotFoundError, match=name):
            TransformerBaseline.from_pretrained(tmp_path)
        with pytest.raises(FileNotFoundError, match="directory"):
            TransformerBaseline.from_pretrained(tmp_path / "nope")

    def test_baseline_shape_mismatch(self, tmp_path):
        make("transformer").save_pretrained(tmp_path)
        meta = json.loads((tmp_path / CONFIG_NAME).read_text())
        meta["config"]["d_ff"] = 32
        (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
        # the checksum is of the weights, which are intact: the shape check names the problem
        with pytest.raises(ValueError, match=r"shape mismatch.*fc.weight: file \(24, 16\)"):
            TransformerBaseline.from_pretrained(tmp_path)

    def test_wrong_model_type_either_way(self, tmp_path):
        make("bk").save_pretrained(tmp_path / "bk")
        make("transformer").save_pretrained(tmp_path / "tf")
        with pytest.raises(ValueError, match="not a transformer config"):
            TransformerBaseline.from_pretrained(tmp_path / "bk")
        with pytest.raises(ValueError, match="not a resnet-bk config"):
            LanguageModel.from_pretrained(tmp_path / "tf")

    def test_legacy_baseline_checkpoint_loads(self, tmp_path):
        m = make("transformer", seed=4)
        write_legacy_baseline(m, tmp_path)
        assert "weights_sha256" not in json.loads((tmp_path / "config.json").read_text())
        loaded = TransformerBaseline.from_pretrained(tmp_path)
        assert_same_model(m, loaded)
        assert torch.equal(loaded.generate(ids(T=5), 8, temperature=0),
                           m.generate(ids(T=5), 8, temperature=0))
        loaded.save_pretrained(tmp_path)  # re-saved in the new format, with a checksum
        assert json.loads((tmp_path / CONFIG_NAME).read_text())["format_version"] == 1
        assert_same_model(m, TransformerBaseline.from_pretrained(tmp_path))

    def test_legacy_baseline_bad_fields_still_named(self, tmp_path):
        m = make("transformer")
        write_legacy_baseline(m, tmp_path)
        meta = json.loads((tmp_path / CONFIG_NAME).read_text())
        meta["n_experts"] = 3
        (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
        with pytest.raises(ValueError, match="unknown TransformerConfig fields.*n_experts"):
            TransformerBaseline.from_pretrained(tmp_path)

    def test_legacy_layout_not_accepted_for_bk(self, tmp_path):
        # only the baseline ever wrote the flat layout: ResNet-BK requires its checksum
        d = {"model_type": "resnet-bk", **ModelConfig(**BK).to_dict()}
        make("bk").save_pretrained(tmp_path)
        (tmp_path / CONFIG_NAME).write_text(json.dumps(d))
        with pytest.raises(ValueError, match="not a resnet-bk config"):
            LanguageModel.from_pretrained(tmp_path)

    def test_new_layout_requires_format_version(self, tmp_path):
        make("transformer").save_pretrained(tmp_path)
        meta = json.loads((tmp_path / CONFIG_NAME).read_text())
        meta["format_version"] = 2
        (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
        with pytest.raises(ValueError, match="unsupported format_version 2"):
            TransformerBaseline.from_pretrained(tmp_path)


def test_config_too_large_to_build_is_a_value_error(tmp_path):
    # a config.json (with a valid checksum) whose model cannot be allocated: a ValueError
    # naming the file, not a raw torch RuntimeError
    import hashlib

    from bkmodel.model import LanguageModel

    m = LanguageModel(vocab_size=17, d_model=8, n_layers=1, n_seq=8, n_channels=2)
    m.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["vocab_size"] = 2**62
    blob = (tmp_path / "model.safetensors").read_bytes()
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="config.json: the model it describes cannot be built"):
        LanguageModel.from_pretrained(tmp_path)
