"""benchmarks/quantize_compare.py's ``--timing-only`` mode at a tiny batch: every row of both
architectures timed (or carrying its error), the JSON written, and bad arguments refused."""

from __future__ import annotations

import json

import pytest
import torch

from tests.bkmodel._scripts import load_benchmark

pytest.importorskip("torchao", reason="the quantization benchmark needs resnet-bk[quant]")


def _load():
    return load_benchmark("quantize_compare")


def test_timing_only_rows(tmp_path):
    out = tmp_path / "q.json"
    n = torch.get_num_threads()
    try:
        rc = _load().main(["--timing-only", "--reps", "1", "--time-batch", "2", "16",
                           "--out", str(out)])
    finally:
        torch.set_num_threads(n)
    assert rc == 0
    doc = json.loads(out.read_text())
    want = {"bk": {"fp32", "int8", "int4-g128", "int4-g32", "int8+in_proj",
                   "int4-g128+in_proj", "int4-g32+in_proj"},
            "transformer": {"fp32", "int8", "int4-g128", "int4-g32"}}
    for arch, labels in want.items():
        rows = {r["label"]: r for r in doc["models"][arch]["rows"]}
        assert set(rows) == labels, arch  # no bf16 row on CPU
        for r in rows.values():  # on CPU every torchao layout runs
            assert "error" not in r, r
            assert r["tokens_per_s"] > 0 and r["x_vs_fp32"] > 0
        assert rows["fp32"]["x_vs_fp32"] == 1.0
    assert doc["settings"]["device"] == "cpu" and doc["settings"]["time_batch"] == [2, 16]


@pytest.mark.parametrize("argv,match", [
    (["--device", "cuda"], "applies to --timing-only"),
    (["--timing-only", "--time-batch", "0", "16"], "must be >= 1"),
])
def test_bad_arguments(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        _load().main(argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_cuda_refused_without_cuda(capsys):
    with pytest.raises(SystemExit):
        _load().main(["--timing-only", "--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err
