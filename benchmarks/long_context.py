"""Long streams on CPU: memory and time of the streamed ResNet-BK evaluation (state carried)
at 10^4, 10^5 and 10^6 tokens against the Transformer's sliding window, and of generation
at 10^3 .. 10^4 generated tokens (issue 15).

What runs
---------
* Models: a ResNet-BK ``LanguageModel`` (selective layer, d = 64, 2 layers, 16 chains,
  MLP feed-forward, n_seq = 256) and the Transformer baseline (d = 64, 2 layers, 4 heads,
  d_ff = 256, max_seq_len = 256), both **freshly initialised** (seed 0): the benchmark
  measures cost and numerical stability, not quality (the perplexity of an untrained model
  is about the vocabulary size).
* Stream: the Shakespeare corpus's held-out *test* plays (Hamlet, Much Ado, Henry V, The
  Tempest), byte tokens (``ByteTokenizer``, 257 ids), each play followed by EOT; the 10^5- and
  10^6-token streams are those plays concatenated repeatedly (:func:`bkmodel.data.tile_stream`;
  the test split holds ~0.55 M byte tokens, so 10^6 is about two passes over it).
* ResNet-BK: :func:`bkmodel.evaluate.evaluate_carried`, chunks of 256 tokens with the state
  carried, chains reset at every play's first token. Transformer:
  :func:`bkmodel.evaluate.evaluate_sliding`, window 256, stride 128 (each token scored once
  with 129..256 tokens of context; twice the forward work of non-overlapping windows).
* Generation: ``generate`` from a one-token prompt, greedy, N new tokens. ResNet-BK carries
  O(1) state per step; the Transformer here has **no KV cache**: every token re-runs the
  last ``max_seq_len`` tokens (its memory is one window, its time per token grows until the
  window is full, then stays at one 256-token forward).

* Long generation (``--gen-long N``, ``--only gen-long`` to run it alone; N = 10^5 by
  default there): greedy from a 16-token prompt, N new tokens, one row per window of
  ``--gen-window`` W tokens (wall seconds, tokens/s, VmRSS at the window's end, peak-RSS
  growth in the window, bytes of the carried decoding state). ResNet-BK runs
  ``LanguageModel.generate``'s own loop (``_prefill``, then ``_sample`` and ``_decode_step``
  per token), runtime guards at their defaults (enabled, as ``generate`` gives users); the
  Transformer its KV-cached path (``prefill`` into a static cache of prompt + N positions,
  then ``step``, what ``generate(use_cache=True)`` runs), with the bytes of keys/values held
  up to the current length (``kv_filled_bytes`` = 2·L·len·d·4) and of the preallocated
  buffer. The Transformer stops at the end of the first window past ``--gen-tf-max-s``
  seconds of decoding (``truncated`` in the JSON). The first 64 tokens of each are checked
  against the model's ``generate`` (``matches_generate_first_tokens``). Writes
  ``benchmarks/results/long_generation_cpu_<date>.json`` (``--gen-out``).

Each measurement runs in a fresh subprocess (one torch thread; the best of 3 runs for the
short ones, which the shared machine's noise dominates): after a warm-up the peak
resident set (``VmHWM``) is reset (``/proc/self/clear_refs``), then the run's peak RSS above
the RSS before it is read back, together with the peak of Python/numpy allocations
(``tracemalloc``; torch's own tensors are not traced by it) and the wall time. The token
stream itself (4 bytes a token) is allocated before the reset and not counted.

Usage: ``python benchmarks/long_context.py [--quick] [--gen-long N [--gen-window W]
[--gen-tf-max-s S] [--only short|gen-long|all]]``; writes
``benchmarks/results/long_context_<date>.json`` and prints ratios against the shortest
length of each series.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout
CHUNK = 256
BK_CFG = dict(d_model=64, n_layers=2, n_seq=CHUNK, n_channels=16, ffn="mlp",
              layer="selective", scan_backend="torch")
TF_CFG = dict(d_model=64, n_layers=2, n_heads=4, d_ff=256, max_seq_len=CHUNK)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _models(vocab: int):
    import torch

    from bkmodel.baseline import TransformerBaseline, TransformerConfig
    from bkmodel.model import LanguageModel

    torch.manual_seed(0)
    bk = LanguageModel(vocab_size=vocab, **BK_CFG).eval()
    torch.manual_seed(0)
    tf = TransformerBaseline(TransformerConfig(vocab_size=vocab, **TF_CFG)).eval()
    return bk, tf


def _stream(n_tokens: int):
    from bkmodel.data import load_split, tile_stream
    from bkmodel.tokenizer import ByteTokenizer, encode_documents

    tok = ByteTokenizer()
    base = encode_documents(tok, load_split("test", "shakespeare"))
    return tok, tile_stream(base, n_tokens), len(base)


def child(kind: str, n: int) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    from bkmodel.evaluate import evaluate_carried, evaluate_sliding

    torch.set_num_threads(1)
    tok, tokens, base_len = _stream(max(n, 2 * CHUNK + 2) if kind.startswith("eval") else 1000)
    bk, tf = _models(tok.vocab_size)
    model = bk if kind.endswith("bk") else tf
    prompt = torch.tensor([[int(tokens[0])]])
    # warm-up (allocator pools, first-call paths), outside the measurement
    if kind.startswith("eval"):
        warm = tokens[: 2 * CHUNK + 1]
        (evaluate_carried(bk, warm, CHUNK, eot_id=tok.eot_id) if model is bk
         else evaluate_sliding(tf, warm, CHUNK))
    else:
        model.generate(prompt, 8, temperature=0)
    gc.collect()
    bk.guard.reset()
    reset_ok = _reset_peak()
    rss0 = _status_kb("VmRSS")
    tracemalloc.start()
    # short runs: best of 3 (a shared machine's noise); the memory peak is over all repeats
    repeats = 3 if n * (1 if kind.startswith("eval") else 50) <= 100_000 else 1
    times, extra = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        if kind == "eval_bk":
            r = evaluate_carried(bk, tokens, CHUNK, eot_id=tok.eot_id)
            extra = {"loss": r["loss"], "tokens_scored": r["tokens"]}
        elif kind == "eval_tf":
            r = evaluate_sliding(tf, tokens, CHUNK, stride=CHUNK // 2)
            extra = {"loss": r["loss"], "tokens_scored": r["tokens"]}
        else:
            out = model.generate(prompt, n, temperature=0)
            extra = {"generated": int(out.shape[1] - 1)}
        times.append(time.perf_counter() - t0)
    if model is bk:
        extra["guard"] = bk.guard_report()
    dt = min(times)
    extra["repeats"] = repeats
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm = _status_kb("VmHWM")
    return {"kind": kind, "n": n, "seconds": dt, "us_per_token": 1e6 * dt / n,
            "rss_before_mb": rss0 / 1024, "peak_rss_mb": hwm / 1024,
            "peak_rss_growth_mb": (hwm - rss0) / 1024 if reset_ok else None,
            "tracemalloc_peak_mb": py_peak / 2**20,
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "stream_base_tokens": base_len, **extra}


def _state_bytes() -> dict:
    """Analytic sizes: ResNet-BK's carried state vs the KV cache a cached Transformer of the
    same shape would hold (the baseline here keeps none: it re-runs its window)."""
    n_in = 3 * BK_CFG["n_channels"]
    per_layer = BK_CFG["n_channels"] * 16 + n_in * 3 * 4  # g complex128 + conv tail float32
    return {"bk_state_bytes": BK_CFG["n_layers"] * per_layer,
            "kv_cache_bytes_per_token_fp32": 2 * TF_CFG["n_layers"] * TF_CFG["d_model"] * 4}


# --------------------------------------------------------------------------------------------
# long generation: 10^5 generated tokens, per window (issue 15)
# --------------------------------------------------------------------------------------------
GEN_PROMPT = 16  # the prompt: the first 16 byte tokens of the test stream


def _tensor_bytes(states: dict) -> int:
    """Bytes of every tensor of a decoding state (a dict of tensors or of dicts of them)."""
    total = 0
    for s in states.values():
        for t in (s.values() if isinstance(s, dict) else [s]):
            if t is not None and hasattr(t, "element_size"):
                total += t.numel() * t.element_size()
    return total


def child_gen_long(kind: str, n: int, window: int, max_s: float) -> dict:
    """Greedy generation of ``n`` tokens in this (fresh) process, one row per ``window``.

    ``kind`` ``bk``: :meth:`LanguageModel.generate`'s own loop (``_prefill``, then
    ``_sample`` + ``_decode_step`` per token into one preallocated output), runtime guards
    at their defaults (enabled: one certificate check per layer and step). ``tf``: the
    baseline's KV-cached path (:meth:`TransformerBaseline.prefill` into a static cache of
    prompt + n positions, then ``step`` per token), what ``generate(use_cache=True)`` runs.
    The Transformer stops at the end of the first window that ends past ``max_s`` seconds
    of decoding (``truncated``)."""
    import torch

    from bkmodel import lm_base
    from bkmodel.baseline import TransformerBaseline, TransformerConfig
    from bkmodel.model import LanguageModel

    torch.set_num_threads(1)
    tok, tokens, _ = _stream(1000)
    prompt = torch.tensor([[int(t) for t in tokens[:GEN_PROMPT]]])
    T = prompt.shape[1]
    torch.manual_seed(0)
    if kind == "bk":
        model = LanguageModel(vocab_size=tok.vocab_size, **BK_CFG).eval()
        model.generate(prompt, 8, temperature=0)  # warm-up
        ref = model.generate(prompt, min(n, 64), temperature=0)
        model.guard.reset()
    else:
        cfg = TransformerConfig(vocab_size=tok.vocab_size, **{**TF_CFG, "max_seq_len": T + n})
        model = TransformerBaseline(cfg).eval()
        model.generate(prompt, 8, temperature=0, use_cache=True)  # warm-up
        ref = model.generate(prompt, min(n, 64), temperature=0, use_cache=True)
    gc.collect()
    row: dict = {"model": kind, "prompt_len": T, "n": n, "window": window}
    reset_ok = _reset_peak()
    rss0 = _status_kb("VmRSS")
    with torch.no_grad():
        t0 = time.perf_counter()
        if kind == "bk":
            states = model._prefill(prompt)
            logits = states.pop("logits")
        else:
            logits, states = model.prefill(prompt, T + n)
        row["prefill_s"] = time.perf_counter() - t0
        hwm = _status_kb("VmHWM")
        row["prefill_rss_growth_mb"] = (hwm - rss0) / 1024 if reset_ok else None
        out = prompt.new_empty(1, T + n, dtype=torch.long)  # as generate: one output tensor
        out[:, :T] = prompt
        L, d = TF_CFG["n_layers"], TF_CFG["d_model"]
        if kind == "tf":
            row["kv_cache"] = True
            row["cache_positions"] = T + n
            row["kv_buffer_bytes"] = sum(states[str(i)][k].numel()
                                         * states[str(i)][k].element_size()
                                         for i in range(L) for k in ("k", "v"))
        windows, done, t_dec = [], 0, 0.0
        row["truncated"] = False
        while done < n:
            w = min(window, n - done)
            gc.collect()
            reset_ok = _reset_peak()
            rss_start = _status_kb("VmRSS")
            tw = time.perf_counter()
            for i in range(done, done + w):
                if kind == "bk":
                    nxt = model._sample(logits, 0, None, None)  # (1, 1)
                    out[:, T + i] = nxt[:, 0]
                    logits = model._decode_step(nxt[:, 0], states)
                else:
                    nxt = lm_base.sample(logits, 0, None, None)
                    out[:, T + i] = nxt[:, 0]
                    if i + 1 < n:  # as generate: the last token's logits are not needed
                        logits, states = model.step(nxt[:, 0], states)
            dt = time.perf_counter() - tw
            t_dec += dt
            done += w
            hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
            r = {"tokens_end": done, "tokens": w, "seconds": dt, "tokens_per_s": w / dt,
                 "ms_per_token": 1e3 * dt / w, "rss_end_mb": rss / 1024,
                 "peak_rss_growth_mb": (hwm - rss_start) / 1024 if reset_ok else None,
                 "state_bytes": _tensor_bytes(states)}
            if kind == "tf":
                length = int(states["length"])
                r["cache_length"] = length
                r["kv_filled_bytes"] = 2 * L * length * d * 4  # keys/values up to length
                r["kv_buffer_bytes"] = row["kv_buffer_bytes"]
            windows.append(r)
            print(f"  {kind} {done:>7,}/{n:,}: {r['tokens_per_s']:8.1f} tok/s, RSS "
                  f"{r['rss_end_mb']:.1f} MB, peak growth {r['peak_rss_growth_mb']:.2f} MB, "
                  f"state {r['state_bytes']:,} B", file=sys.stderr, flush=True)
            if kind == "tf" and t_dec > max_s and done < n:
                row["truncated"] = True
                break
    row["generated"] = done
    row["decode_s"] = t_dec
    row["rss_before_mb"] = rss0 / 1024
    row["windows"] = windows
    k = ref.shape[1]
    row["matches_generate_first_tokens"] = {"tokens": k - T,
                                            "equal": bool(torch.equal(out[:, :k], ref))}
    if kind == "bk":
        row["guard"] = model.guard_report()
        row["guard_enabled"] = bool(model.config.guard.enabled)
        row["state_bytes_analytic"] = _state_bytes()["bk_state_bytes"]
    return row


def run_gen_long(n: int, window: int, max_s: float, out_path: Path | None) -> Path:
    """Both models' long generation, each in a fresh subprocess; writes the JSON."""
    import torch

    from benchmarks._results import write_result

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    rows = []
    for kind in ("bk", "tf"):
        print(f"gen-long {kind}: {n:,} tokens, windows of {window:,}", flush=True)
        p = subprocess.run([sys.executable, __file__, "--child-gen-long", kind, str(n),
                            str(window), str(max_s)], env=env, stdout=subprocess.PIPE,
                           text=True, check=False)
        if p.returncode:
            raise RuntimeError(f"gen-long child {kind} failed (rc {p.returncode})")
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    for r in rows:
        first = r["windows"][0]["tokens_per_s"]
        for w in r["windows"]:
            w["tokens_per_s_vs_first"] = w["tokens_per_s"] / first
    doc = {
        "benchmark": "long_generation",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": 1, "device": "cpu",
                    "loadavg": list(os.getloadavg())},
        "models": {"bk": BK_CFG, "transformer": {**TF_CFG, "max_seq_len": "prompt + n"},
                   "init": "fresh, seed 0", "tokenizer": "byte (257)"},
        "setup": {"prompt": f"first {GEN_PROMPT} byte tokens of the test stream",
                  "decoding": "greedy", "n": n, "window": window, "tf_max_s": max_s,
                  "bk_loop": "LanguageModel.generate's loop (_prefill, _sample, "
                             "_decode_step), guards at their defaults (enabled)",
                  "tf_loop": "TransformerBaseline.prefill into a static KV cache of prompt + "
                             "n positions, then step per token (generate(use_cache=True))",
                  "memory": "per window: VmRSS at its end; peak RSS growth = VmHWM (reset "
                            "by /proc/self/clear_refs at the window start) minus VmRSS then"},
        "rows": rows,
    }
    name = f"long_generation_cpu_{_dt.date.today().isoformat()}.json"
    out = write_result(doc, out_path, name, indent=2)
    for r in rows:
        print(f"{r['model']}: {r['generated']:,} tokens in {r['decode_s']:.1f} s"
              + (" (TRUNCATED at the time cap)" if r["truncated"] else ""))
    print(f"wrote {out}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="10^4 and 10^5 only, 10^3 generated")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child-gen-long", nargs=4, metavar=("KIND", "N", "W", "MAX_S"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=("short", "gen-long", "all"), default=None,
                    help="short: the eval and 10^3..10^4 generation series (the default without "
                         "--gen-long); gen-long: only the long generation; all: both "
                         "(the default with --gen-long)")
    ap.add_argument("--gen-long", type=int, default=None, metavar="N",
                    help="long generation: N new tokens per model, per window (100000 with "
                         "--only gen-long)")
    ap.add_argument("--gen-window", type=int, default=10_000, metavar="W",
                    help="tokens per measured window of the long generation (10000)")
    ap.add_argument("--gen-tf-max-s", type=float, default=900.0, metavar="S",
                    help="stop the Transformer's long generation at the end of the window "
                         "that passes S seconds of decoding (900; flagged truncated)")
    ap.add_argument("--gen-out", type=Path, default=None,
                    help="JSON of the long generation (default benchmarks/results/"
                         "long_generation_cpu_<date>.json)")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0
    if args.child_gen_long:
        kind, n, w, max_s = args.child_gen_long
        print(json.dumps(child_gen_long(kind, int(n), int(w), float(max_s))))
        return 0
    only = args.only or ("all" if args.gen_long is not None else "short")
    if only != "short":
        n = 100_000 if args.gen_long is None else args.gen_long
        if n < 1 or args.gen_window < 1:
            ap.error("--gen-long and --gen-window must be positive")
        run_gen_long(n, args.gen_window, args.gen_tf_max_s, args.gen_out)
        if only == "gen-long":
            return 0
    eval_ns = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    gen_ns = [1_000] if args.quick else [1_000, 3_000, 10_000]
    plan = ([("eval_bk", n) for n in eval_ns] + [("eval_tf", n) for n in eval_ns]
            + [("gen_bk", n) for n in gen_ns] + [("gen_tf", n) for n in gen_ns])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    rows = []
    for kind, n in plan:
        p = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], env=env,
                           capture_output=True, text=True, check=False)
        if p.returncode:
            print(p.stderr, file=sys.stderr)
            return 1
        r = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{kind:8s} n={n:>9,}  {r['seconds']:8.2f} s  {r['us_per_token']:8.1f} us/token"
              f"  peak RSS growth {r['peak_rss_growth_mb']:7.2f} MB  (RSS {r['peak_rss_mb']:.0f}"
              f" MB, tracemalloc {r['tracemalloc_peak_mb']:.3f} MB)", flush=True)
    print("\nratios against the shortest length of each series:")
    for kind in ("eval_bk", "eval_tf", "gen_bk", "gen_tf"):
        series = [r for r in rows if r["kind"] == kind]
        ref = series[0]
        for r in series[1:]:
            print(f"  {kind:8s} {r['n']:>9,} / {ref['n']:,}: time per token x"
                  f"{r['us_per_token'] / ref['us_per_token']:.2f}, peak RSS growth "
                  f"{r['peak_rss_growth_mb'] - ref['peak_rss_growth_mb']:+.2f} MB "
                  f"({r['n'] / ref['n']:.0f}x the tokens)")
    import torch

    from benchmarks._results import write_result

    doc = {
        "benchmark": "long_context",
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": 1},
        "models": {"bk": BK_CFG, "transformer": TF_CFG, "init": "fresh, seed 0",
                   "tokenizer": "byte (257)"},
        "stream": "test split plays (hamlet, much_ado_about_nothing, henry_v, tempest), "
                  "byte tokens, EOT after each play, tiled to n tokens",
        "analytic": _state_bytes(),
        "rows": rows,
    }
    out = write_result(doc, args.out, f"long_context_{_dt.date.today().isoformat()}.json",
                       indent=2)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
