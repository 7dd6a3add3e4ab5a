"""Bad and extreme input across bkmodel's public entry points (issue 16, the bkmodel half).

The standard of ``tests/bkmath/test_bad_input.py`` for the language model: the configs
(:class:`ModelConfig`, :class:`GuardConfig`, :class:`TrainConfig`), the BK scan,
``generate`` and ``from_pretrained`` of both architectures, fed wrong types, NaN/inf,
negative and huge values, wrong shapes and dtypes, either work or raise ``ValueError`` /
``TypeError`` naming the argument (``FileNotFoundError`` for a missing checkpoint) — never a
raw torch ``RuntimeError``/``IndexError``/``AssertionError`` and never a silent NaN.

The one deliberate exception (``bkmodel/ops/bk_scan/_validate.py``): NaN/inf inside
per-token ``eta``/``b`` or inside ``v`` are activations, let through to the runtime guards;
there the property is that ``return_stats=True`` counts every non-finite output.
``BKMODEL_BAD_INPUT_EXAMPLES`` sets the examples per property (default 200, ~2 s; 4000 ran
clean in 15 s).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bkmodel.baseline import TransformerBaseline, TransformerConfig
from bkmodel.config import GuardConfig, ModelConfig
from bkmodel.lm_base import CONFIG_NAME, WEIGHTS_NAME
from bkmodel.model import LanguageModel
from bkmodel.ops.bk_scan import bk_scan
from bkmodel.presets import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_EXAMPLES = int(os.environ.get("BKMODEL_BAD_INPUT_EXAMPLES", "200"))
PROFILE = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
ALLOWED = (ValueError, TypeError)

BAD_VALUES = [
    None, "x", "", [], {}, (1,), True, False, 1j, math.nan, math.inf, -math.inf,
    -1, 0, 1, 2, -1.0, 0.0, 0.5, 2.5, -1e300, 1e300, 5e-324, 10**30, -(10**30),
]
bad = st.sampled_from(BAD_VALUES)


def _raises_naming(fn, *names: str, start: bool = False):
    """``fn()``: its value, or None after a ValueError/TypeError whose message names one of
    ``names`` (begins with one, with ``start``); any other exception fails."""
    try:
        return fn()
    except ALLOWED as exc:
        msg = str(exc)
        hit = any(msg.startswith(n) if start else n in msg for n in names)
        assert hit, f"{type(exc).__name__} does not name {names}: {msg}"
        return None


def _floats_finite(obj) -> bool:
    for f in dataclasses.fields(obj):
        x = getattr(obj, f.name)
        if isinstance(x, float) and not math.isfinite(x):
            return False
    return True


# ------------------------------------------------------------------------------------------
# configs
# ------------------------------------------------------------------------------------------
MODEL_FIELDS = [f.name for f in dataclasses.fields(ModelConfig) if f.name != "guard"]
GUARD_FIELDS = [f.name for f in dataclasses.fields(GuardConfig)]
TRAIN_FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


class TestConfigs:
    @PROFILE
    @given(name=st.sampled_from(MODEL_FIELDS), value=bad,
           layer=st.sampled_from(["classic", "selective"]))
    def test_model_config_field(self, name, value, layer):
        kw = {"layer": layer, name: value}
        cfg = _raises_naming(lambda: ModelConfig(**kw), name)
        if cfg is not None:
            assert _floats_finite(cfg), cfg
            assert ModelConfig.from_dict(cfg.to_dict()) == cfg

    @PROFILE
    @given(name=st.sampled_from(GUARD_FIELDS), value=bad)
    def test_guard_config_field(self, name, value):
        g = _raises_naming(lambda: GuardConfig(**{name: value}), name)
        if g is not None:
            assert _floats_finite(g), g
        m = _raises_naming(lambda: ModelConfig(guard={name: value}), name)
        if m is not None:
            assert _floats_finite(m.guard)

    @PROFILE
    @given(name=st.sampled_from(TRAIN_FIELDS), value=bad)
    def test_train_config_field(self, name, value):
        cfg = _raises_naming(lambda: TrainConfig(**{name: value}), name)
        if cfg is not None:
            assert _floats_finite(cfg), cfg

    def test_config_dicts(self):
        for d in (None, [], "x", {"nope": 1}, {"guard": {"nope": 1}}, {"guard": 3}):
            _raises_naming(lambda d=d: ModelConfig.from_dict(d), "config", "nope", "guard")
        _raises_naming(lambda: TrainConfig.from_dict({"nope": 1}), "nope")
        _raises_naming(lambda: TrainConfig(model_options={"nope": 1}).bk_model_config(16),
                       "nope")


# ------------------------------------------------------------------------------------------
# the BK scan
# ------------------------------------------------------------------------------------------
EXTREME = [0.0, -0.0, 1.0, -3.0, 0.5, 1e-30, 1e30, -1e30, 1e300, -1e300, 5e-324,
           math.nan, math.inf, -math.inf]
scalar = st.one_of(st.sampled_from(EXTREME), st.floats(-10, 10))
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.complex64]
B, N, C = 2, 5, 3


def _tensor(fill: float, shape, dtype, data) -> torch.Tensor:
    base = torch.tensor(data.draw(st.lists(st.floats(-2, 2), min_size=1, max_size=1))[0])
    t = torch.full(shape, base.item(), dtype=torch.float64)
    if t.numel() and data.draw(st.booleans()):
        idx = tuple(data.draw(st.integers(0, s - 1)) for s in shape) if shape else ()
        t[idx] = fill
    return t.to(dtype)


SCAN_OUTCOMES = {"raised": 0, "returned": 0}


class TestBKScan:
    @PROFILE
    @given(data=st.data(),
           # mostly valid arguments, so that most examples reach the scan's values
           v_dtype=st.sampled_from(DTYPES[:2] * 4 + DTYPES[2:]),
           v_shape=st.sampled_from([(B, N, C)] * 6 + [(B, 0, C), (B, N), (N, C, 1, 1),
                                                       (1, 1, 1)]),
           eta_tok=st.booleans(), b_tok=st.booleans(), eta_fill=scalar, b_fill=scalar,
           v_fill=scalar, lam_fill=scalar,
           tol=st.sampled_from([1e-3] * 6 + [0.0, -1.0, math.nan, "x"]),
           backend=st.sampled_from(["auto", "torch", "naive"] * 3 + ["bad"]),
           g0=st.sampled_from([None, None, None, "ok", "ok", "neg", "real", "shape"]))
    def test_scan(self, data, v_dtype, v_shape, eta_tok, b_tok, eta_fill, b_fill, v_fill,
                  lam_fill, tol, backend, g0):
        v = _tensor(v_fill, v_shape, v_dtype, data)
        c = v_shape[-1] if len(v_shape) == 3 else C
        tok_shape = v_shape if len(v_shape) == 3 else (B, N, C)
        lam = _tensor(lam_fill, (c,), torch.float64, data)
        eta = _tensor(eta_fill, tok_shape if eta_tok else (c,), torch.float64, data).abs() + 0.1
        if data.draw(st.integers(0, 3)) == 0:  # eta <= 0 or a non-finite somewhere
            eta = _tensor(eta_fill, tok_shape if eta_tok else (c,), torch.float64, data)
        b = _tensor(b_fill, tok_shape if b_tok else (c,), torch.float64, data)
        Bv = v_shape[0]
        init = {
            None: None,
            "ok": torch.full((Bv, c), 0.1 + 0.2j, dtype=torch.complex128),
            "neg": torch.full((Bv, c), 0.1 - 0.2j, dtype=torch.complex128),
            "real": torch.zeros(Bv, c),
            "shape": torch.zeros(Bv + 1, c, dtype=torch.complex128),
        }[g0]
        out = _raises_naming(
            lambda: bk_scan(v, lam, eta, b, backend=backend, return_stats=True, tol=tol,
                            initial_state=init, return_final_state=True),
            "v ", "lam ", "eta ", "b ", "initial_state ", "tol ", "backend ", start=True,
        )
        SCAN_OUTCOMES["raised" if out is None else "returned"] += 1
        if out is None:
            return
        g_re, g_im, stats, _ = out
        nonfinite = int((~(torch.isfinite(g_re) & torch.isfinite(g_im))).sum())
        assert int(stats[0]) == nonfinite  # every non-finite output is counted
        per_channel_ok = bool(torch.isfinite(lam).all())
        assert per_channel_ok, "a non-finite lam was accepted"
        if not eta_tok:
            assert bool((eta > 0).all()) and bool(torch.isfinite(eta).all())
        else:
            assert not bool((eta <= 0).any())
        if not b_tok:
            assert bool(torch.isfinite(b).all())

    def test_nan_in_per_token_inputs_is_counted_not_raised(self):
        v = torch.zeros(B, N, C, dtype=torch.float64)
        lam = torch.zeros(C, dtype=torch.float64)
        eta = torch.ones(B, N, C, dtype=torch.float64)
        b = torch.ones(B, N, C, dtype=torch.float64)
        for which in ("v", "eta", "b"):
            args = {"v": v.clone(), "eta": eta.clone(), "b": b.clone()}
            args[which][0, 2, 1] = math.nan
            g_re, g_im, stats = bk_scan(args["v"], lam, args["eta"], args["b"],
                                        backend="torch", return_stats=True)
            assert int(stats[0]) > 0, which
            assert int(stats[0]) == int((~torch.isfinite(torch.complex(g_re, g_im))).sum())

    def test_per_channel_nan_and_eta_le_0_raise(self):
        v = torch.zeros(B, N, C, dtype=torch.float64)
        ok = torch.ones(C, dtype=torch.float64)
        bad_c = torch.tensor([1.0, math.nan, 1.0], dtype=torch.float64)
        for kw, name in (({"lam": bad_c}, "lam"), ({"eta": bad_c}, "eta"), ({"b": bad_c}, "b"),
                         ({"eta": -ok}, "eta")):
            args = {"lam": ok, "eta": ok, "b": ok, **kw}
            with pytest.raises(ValueError, match=f"^{name} "):
                bk_scan(v, args["lam"], args["eta"], args["b"], backend="torch")
        with pytest.raises(ValueError, match="^eta "):
            bk_scan(v, ok, torch.zeros(B, N, C, dtype=torch.float64), ok, backend="torch")


# ------------------------------------------------------------------------------------------
# generate and from_pretrained
# ------------------------------------------------------------------------------------------
V = 19
BK = dict(vocab_size=V, d_model=16, n_layers=1, n_seq=8, n_channels=2, num_experts=2)
TF = TransformerConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, d_ff=16, max_seq_len=8)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"bk": LanguageModel(**BK), "transformer": TransformerBaseline(TF)}


IDS = {
    "ok": torch.tensor([[1, 2, 3]]),
    "float": torch.tensor([[1.0, 2.0]]),
    "1d": torch.tensor([1, 2]),
    "empty": torch.zeros(1, 0, dtype=torch.long),
    "neg": torch.tensor([[-1, 2]]),
    "big": torch.tensor([[V, 2]]),
    "ignore": torch.tensor([[-100, 2]]),
    "list": [[1, 2]],
    "long": torch.ones(1, 20, dtype=torch.long),
}


class TestGenerate:
    @PROFILE
    @given(kind=st.sampled_from(["bk", "transformer"]), ids=st.sampled_from(sorted(IDS)),
           n=st.sampled_from([0, 1, 3, -1, 2.5, True, None, "2"]),
           temperature=st.sampled_from([0, 0.0, 1.0, 1e-300, 5e-324, 1e-30, 1e300, -1.0,
                                        math.nan, math.inf, None, "1"]),
           top_k=st.sampled_from([None, 1, 5, 10**6, 0, -1, 2.5, True]))
    def test_generate(self, models, kind, ids, n, temperature, top_k):
        model = models[kind]
        gen = torch.Generator().manual_seed(0)
        out = _raises_naming(
            lambda: model.generate(IDS[ids], n, temperature, top_k, generator=gen),
            "input_ids", "max_new_tokens", "temperature", "top_k",
        )
        if out is not None:
            x = IDS[ids]
            assert out.shape == (x.shape[0], x.shape[1] + n)
            assert bool(((out >= 0) & (out < V)).all())


def _save(model, path):
    model.save_pretrained(path)
    return path / CONFIG_NAME, path / WEIGHTS_NAME


def _rehash(cfg_path, w_path):
    meta = json.loads(cfg_path.read_text())
    meta["weights_sha256"] = hashlib.sha256(w_path.read_bytes()).hexdigest()
    cfg_path.write_text(json.dumps(meta))


CORRUPTIONS = [
    "missing_dir", "missing_config", "missing_weights", "config_not_json", "config_binary",
    "config_list", "config_wrong_type", "config_no_config", "config_version", "config_str",
    "config_bad_field", "config_nan_field", "config_unknown_field", "weights_flipped",
    "weights_truncated_rehashed", "weights_garbage_rehashed", "weights_other_shape",
    "weights_nan", "dir_is_file", "directory_none", "map_location_bad",
]


class TestFromPretrained:
    @pytest.mark.parametrize("kind", ["bk", "transformer"])
    @pytest.mark.parametrize("how", CORRUPTIONS)
    def test_corrupt_checkpoint(self, models, tmp_path, kind, how):
        model = models[kind]
        cls = type(model)
        path = tmp_path / "ckpt"
        cfg_path, w_path = _save(model, path)
        meta = json.loads(cfg_path.read_text())
        kw = {}
        arg = path
        if how == "missing_dir":
            arg = tmp_path / "nope"
        elif how == "missing_config":
            cfg_path.unlink()
        elif how == "missing_weights":
            w_path.unlink()
        elif how == "config_not_json":
            cfg_path.write_text("{not json")
        elif how == "config_binary":
            cfg_path.write_bytes(b"\xff\xfe\x00")
        elif how == "config_list":
            cfg_path.write_text("[1, 2]")
        elif how == "config_wrong_type":
            meta["model_type"] = "gpt"
            cfg_path.write_text(json.dumps(meta))
        elif how == "config_no_config":
            del meta["config"]
            cfg_path.write_text(json.dumps(meta))
        elif how == "config_version":
            meta["format_version"] = 99
            cfg_path.write_text(json.dumps(meta))
        elif how == "config_str":
            meta["config"] = "d_model=16"
            cfg_path.write_text(json.dumps(meta))
        elif how in ("config_bad_field", "config_nan_field", "config_unknown_field"):
            key = {"config_bad_field": "d_model", "config_nan_field": "dropout",
                   "config_unknown_field": "nope"}[how]
            meta["config"][key] = {"config_bad_field": "16", "config_nan_field": math.nan,
                                   "config_unknown_field": 1}[how]
            cfg_path.write_text(json.dumps(meta))
        elif how == "weights_flipped":
            blob = bytearray(w_path.read_bytes())
            blob[-1] ^= 0xFF
            w_path.write_bytes(bytes(blob))
        elif how == "weights_truncated_rehashed":
            w_path.write_bytes(w_path.read_bytes()[:40])
            _rehash(cfg_path, w_path)
        elif how == "weights_garbage_rehashed":
            w_path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
            _rehash(cfg_path, w_path)
        elif how == "weights_other_shape":
            other = type(model)(dataclasses.replace(model.config, vocab_size=V + 1))
            other.save_pretrained(tmp_path / "other")
            w_path.write_bytes((tmp_path / "other" / WEIGHTS_NAME).read_bytes())
            _rehash(cfg_path, w_path)
        elif how == "weights_nan":
            broken = type(model)(model.config)
            with torch.no_grad():
                next(broken.parameters()).fill_(math.nan)
            broken.save_pretrained(path)  # a valid checksum over NaN weights
        elif how == "dir_is_file":
            arg = w_path
        elif how == "directory_none":
            arg = None
        elif how == "map_location_bad":
            kw = {"map_location": "nowhere"}
        if how.startswith("missing") or how == "dir_is_file":
            with pytest.raises(FileNotFoundError):
                cls.from_pretrained(arg, **kw)
            return
        with pytest.raises(ALLOWED) as info:
            cls.from_pretrained(arg, **kw)
        msg = str(info.value)
        assert any(s in msg for s in (CONFIG_NAME, WEIGHTS_NAME, "directory", "map_location",
                                      "d_model", "dropout", "nope", "config")), msg

    @pytest.mark.parametrize("kind", ["bk", "transformer"])
    def test_round_trip_is_unchanged(self, models, tmp_path, kind):
        model = models[kind]
        type(model).save_pretrained(model, tmp_path / "ok")
        back = type(model).from_pretrained(tmp_path / "ok")
        for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(),
                                  strict=True):
            assert torch.equal(a, b), k


class TestFoundByTheProperty:
    """Regressions, one per failure the properties above found."""

    def test_sample_tiny_temperature_is_greedy_not_nan(self):
        # softmax(logits / 1e-300) was NaN (inf - inf; float32 rounds T to 0): multinomial
        # raised a raw RuntimeError. Shifted to max 0 in float64, it is the argmax.
        from bkmodel.lm_base import sample

        logits = torch.tensor([[0.5, 3.0, -1.0], [2.0, -2.0, 1.0]])
        for t in (1e-300, 5e-324, 1e-30):
            got = sample(logits, t, None, torch.Generator().manual_seed(0))
            assert got.flatten().tolist() == [1, 0]

    def test_eta_min_above_eta_init_names_eta_min(self):
        with pytest.raises(ValueError, match="eta_init must be > eta_min.*eta_min=1"):
            ModelConfig(eta_min=1)

    @pytest.mark.parametrize("name", ["lr", "weight_decay", "grad_clip", "beta1"])
    def test_train_config_non_finite_and_wrong_type(self, name):
        # weight_decay=nan and lr=inf were accepted; min_lr_ratio=None raised a bare
        # comparison TypeError
        for value in (math.nan, math.inf, None, "1"):
            with pytest.raises((ValueError, TypeError), match=name):
                TrainConfig(**{name: value})
        with pytest.raises(TypeError, match="preset"):
            TrainConfig(preset=math.nan)

    def test_transformer_generate_checks_ids_when_nothing_is_drawn(self, models):
        for bad_ids in (torch.tensor([1, 2]), torch.tensor([[V, 2]])):
            for n in (0, 1):
                with pytest.raises((ValueError, TypeError), match="input_ids"):
                    models["transformer"].generate(bad_ids, n, 0)
