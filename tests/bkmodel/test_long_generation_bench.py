"""benchmarks/long_context.py's long-generation mode (``--only gen-long``) at a tiny size:
the JSON's structure, one row per window for both models, ResNet-BK's constant state and
the Transformer's growing KV cache, and the wall-time cap's honest partial result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.bkmodel._scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "long_context.py"
N, W = 64, 16


def _load():
    return load_benchmark("long_context")


def test_gen_long_json_rows_per_window(tmp_path):
    out = tmp_path / "gen.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(SCRIPT), "--only", "gen-long", "--gen-long",
                        str(N), "--gen-window", str(W), "--gen-out", str(out)],
                       env=env, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "long_generation"
    assert {"command", "date", "machine", "models", "setup"} <= set(doc)
    assert doc["setup"]["n"] == N and doc["setup"]["window"] == W
    rows = {r["model"]: r for r in doc["rows"]}
    assert set(rows) == {"bk", "tf"}
    L, d = 2, 64
    for kind, r in rows.items():
        assert r["generated"] == N and r["truncated"] is False
        assert r["matches_generate_first_tokens"]["equal"] is True
        ends = [w["tokens_end"] for w in r["windows"]]
        assert ends == list(range(W, N + 1, W)), kind
        for w in r["windows"]:
            assert w["seconds"] > 0 and w["tokens_per_s"] > 0
            assert abs(w["tokens_per_s"] - w["tokens"] / w["seconds"]) < 1e-6 * w["tokens_per_s"]
            assert w["rss_end_mb"] > 0 and "peak_rss_growth_mb" in w
            assert w["tokens_per_s_vs_first"] > 0
        assert r["windows"][0]["tokens_per_s_vs_first"] == 1.0
    bk, tf = rows["bk"], rows["tf"]
    assert bk["guard_enabled"] is True and bk["guard"]["raised"] == 0
    assert {w["state_bytes"] for w in bk["windows"]} == {bk["state_bytes_analytic"]} == {1664}
    T = tf["prompt_len"]
    assert tf["kv_cache"] is True and tf["cache_positions"] == T + N
    assert tf["kv_buffer_bytes"] == 2 * L * (T + N) * d * 4
    lengths = [w["cache_length"] for w in tf["windows"]]
    assert lengths == [T + e - (e == N) for e in range(W, N + 1, W)]  # last token: no step
    assert [w["kv_filled_bytes"] for w in tf["windows"]] == [2 * L * n * d * 4 for n in lengths]


def test_gen_long_tf_time_cap_is_flagged():
    mod = _load()
    threads = torch.get_num_threads()
    try:
        r = mod.child_gen_long("tf", N, W, 0.0)  # any decoding passes a cap of 0 s
    finally:
        torch.set_num_threads(threads)
    assert r["truncated"] is True
    assert r["generated"] == W and len(r["windows"]) == 1
