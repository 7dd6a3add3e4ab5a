"""save_pretrained / from_pretrained: round trips and clear errors for bad checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from bkmodel.config import ModelConfig
from bkmodel.model import CONFIG_NAME, WEIGHTS_NAME, LanguageModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = dict(vocab_size=29, d_model=16, n_layers=2, n_seq=32, n_channels=2, num_experts=2,
           top_k=1)


@pytest.fixture
def model() -> LanguageModel:
    torch.manual_seed(0)
    m = LanguageModel(**CFG, guard={"action": "skip_step", "tol": 1e-2})
    with torch.no_grad():  # move z_c and b_c off their initial values
        for blk in m.blocks:
            blk.bk.lam.add_(0.1)
            blk.bk.eta_raw.add_(0.2)
            blk.bk.hop.mul_(0.7)
    return m


def ids():
    return torch.randint(0, 29, (2, 12), generator=torch.Generator().manual_seed(5))


class TestRoundTrip:
    def test_identical_outputs_and_config(self, model, tmp_path):
        model.save_pretrained(tmp_path / "ck")
        loaded = LanguageModel.from_pretrained(tmp_path / "ck")
        assert loaded.config == model.config
        assert loaded.config.guard.action == "skip_step"
        assert torch.equal(loaded(ids())[0], model(ids())[0])
        assert loaded.lm_head.weight is loaded.wte.weight  # tying restored
        for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                  strict=True):
            assert torch.equal(a, b), k

    def test_untied(self, tmp_path):
        torch.manual_seed(1)
        m = LanguageModel(**CFG, tie_embeddings=False)
        m.save_pretrained(tmp_path)
        loaded = LanguageModel.from_pretrained(tmp_path)
        assert torch.equal(loaded.lm_head.weight, m.lm_head.weight)
        assert loaded.lm_head.weight is not loaded.wte.weight

    def test_overwrite_leaves_no_temporaries(self, model, tmp_path):
        model.save_pretrained(tmp_path)
        model.save_pretrained(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])

    def test_config_json_readable(self, model, tmp_path):
        model.save_pretrained(tmp_path)
        meta = json.loads((tmp_path / CONFIG_NAME).read_text())
        assert ModelConfig.from_dict(meta["config"]) == model.config
        assert meta["model_type"] == "resnet-bk" and len(meta["weights_sha256"]) == 64


class TestBadCheckpoints:
    def test_missing_directory(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="directory"):
            LanguageModel.from_pretrained(tmp_path / "nope")

    @pytest.mark.parametrize("name", [CONFIG_NAME, WEIGHTS_NAME])
    def test_missing_file(self, model, tmp_path, name):
        model.save_pretrained(tmp_path)
        (tmp_path / name).unlink()
        with pytest.raises(FileNotFoundError, match=name):
            LanguageModel.from_pretrained(tmp_path)

    def test_corrupt_json(self, model, tmp_path):
        model.save_pretrained(tmp_path)
        (tmp_path / CONFIG_NAME).write_text("{not json")
        with pytest.raises(ValueError, match="not valid JSON"):
            LanguageModel.from_pretrained(tmp_path)

    def test_wrong_kind_of_json(self, model, tmp_path):
        model.save_pretrained(tmp_path)
        (tmp_path / CONFIG_NAME).write_text(json.dumps({"hello": 1}))
        with pytest.raises(ValueError, match="resnet-bk"):
            LanguageModel.from_pretrained(tmp_path)

    def test_corrupt_weights(self, model, tmp_path):
        model.save_pretrained(tmp_path)
        data = bytearray((tmp_path / WEIGHTS_NAME).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (tmp_path / WEIGHTS_NAME).write_bytes(bytes(data))
        with pytest.raises(ValueError, match="corrupt"):
            LanguageModel.from_pretrained(tmp_path)

    def test_truncated_weights(self, model, tmp_path):
        model.save_pretrained(tmp_path)
        p = tmp_path / WEIGHTS_NAME
        p.write_bytes(p.read_bytes()[:100])
        with pytest.raises(ValueError, match="corrupt"):
            LanguageModel.from_pretrained(tmp_path)

    def test_config_does_not_match_weights(self, model, tmp_path):
        model.save_pretrained(tmp_path)
        meta = json.loads((tmp_path / CONFIG_NAME).read_text())
        meta["config"]["n_channels"] = 5
        (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
        with pytest.raises(ValueError, match="n_channels|does not match|size mismatch"):
            LanguageModel.from_pretrained(tmp_path)

    def test_invalid_config_field(self, model, tmp_path):
        model.save_pretrained(tmp_path)
        meta = json.loads((tmp_path / CONFIG_NAME).read_text())
        meta["config"]["eta_min"] = -1.0
        (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
        with pytest.raises(ValueError, match="eta_min"):
            LanguageModel.from_pretrained(tmp_path)
