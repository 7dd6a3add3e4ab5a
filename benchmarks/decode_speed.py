"""Decode speed and memory against prompt length: ResNet-BK's O(1) state vs the Transformer
baseline with a KV cache (issue 18).

What runs
---------
* Models, **freshly initialised** (seed 0; cost, not quality): a ResNet-BK ``LanguageModel``
  (selective layer, d = 64, 2 layers, 16 chains, conv 4, MLP, ``n_seq`` = 1,024: the prompt
  is prefilled in chunks of 1,024 with the state carried, as ``generate`` does) and the
  Transformer baseline (d = 64, 2 layers, 4 heads, d_ff = 256) with ``max_seq_len`` set to
  the prompt length plus the new tokens plus the 8 check tokens (below), so that its cache
  holds the whole context and nothing is cropped. ``--d-model`` / ``--n-layers`` change both.
* Prompt: random ids (vocabulary 257), batch 1, lengths 1k, 4k, 16k, 64k
  (``--quick``: 256, 1k, 4k; ``--lengths`` to choose).
* Both models get the same treatment: a prefill (timed alone), then greedy decoding, one
  model step per token, exactly their ``generate`` loop. ResNet-BK: ``_prefill``, then
  ``_decode_step`` (one recurrence step per layer); its runtime guards are off (their
  per-step host read cannot sit in a CUDA graph; the same setting on CPU). Transformer:
  ``TransformerBaseline.prefill`` into a static (preallocated) KV cache of
  ``prompt + new + 8`` positions, then ``step`` (per layer one query against the whole
  K/V buffer under the mask ``slot < length + 1``, RoPE from the cache's cos/sin tables at a
  device-side position, the new K/V written in place): O(T·d) per token and layer, so its
  time per token still grows with the prompt, but linearly, not by a forward over the
  context. On CUDA with ``--cuda-graph`` (default on CUDA) the whole step of either model,
  argmax and state/cache update included, is one CUDA graph replayed per token (the same
  helper, :func:`_graph_decoder`, for both); its first 8 tokens are checked against the
  eager loop's before anything is reported, then the timed tokens follow (the Transformer's
  cache has room for both).
* ``--tf-no-cache``: the Transformer rows measure the old cacheless generate instead
  (``generate(..., use_cache=False)``: every new token re-runs the forward over the whole
  context; ``--tf-new-tokens`` then defaults to 4), with the analytic size a float32 KV
  cache would have (``kv_cache_bytes_if_cached``) and ``state_bytes`` 0.
* Memory. CPU: each (model, length) runs in a fresh subprocess; the peak resident set
  (``VmHWM``) is reset (``/proc/self/clear_refs``) before the prefill and again before the
  decoding, and each phase's peak RSS is read back with its growth above the RSS before it.
  CUDA: ``torch.cuda.max_memory_allocated`` per phase (peak reset before each), and its growth
  above the allocation before it. ``state_bytes``: the carried decoding state measured from
  the tensors: ResNet-BK's per-layer states (constant in the prompt length); the
  Transformer's KV cache, which grows with the prompt (every tensor of it: K and V, its
  position and RoPE tables; ``kv_bytes``: K and V alone, ``2·L·S·d`` values for
  ``cache_positions`` S).

* ``--hf`` adds two rows per length on the same ResNet-BK model: ``gen``, the project's
  ``LanguageModel.generate`` (greedy) as a whole, and ``hf``, ``model.generate`` through
  ``transformers`` with the recurrent cache (:class:`bkmodel.hf.ResNetBKForCausalLM`, greedy,
  no eos). Both are timed by :func:`bkmodel.generation.timed_generate` /
  :func:`bkmodel.hf.timed_generate` (prefill = the first model step, decode = the rest,
  sampling and ``transformers``' per-token work included; memory over the whole call). The
  ``hf`` tokens are checked against ``gen``'s before anything is reported. Against the
  ``bk`` row (the bare decode loop, or its CUDA graph on CUDA) this shows what each layer of
  machinery costs per token. Needs ``pip install resnet-bk[hf]``.

Usage: ``python benchmarks/decode_speed.py [--quick] [--device cpu|cuda] [--lengths ...]
[--tf-max-len N] [--tf-no-cache] [--hf]``; writes
``benchmarks/results/decode_speed_<device>_<date>.json`` (``decode_speed_hf_<device>_<date>.json``
with ``--hf``) and prints a table with ratios against the shortest prompt.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VOCAB = 257
CHECK_STEPS = 8  # CUDA graph: tokens checked against the eager loop before the timing


def _bk_cfg(d: int, layers: int) -> dict:
    return dict(vocab_size=VOCAB, d_model=d, n_layers=layers, n_seq=1024, n_channels=16,
                ffn="mlp", layer="selective", conv_size=4, guard={"enabled": False})


def _tf_cfg(d: int, layers: int, max_len: int) -> dict:
    return dict(vocab_size=VOCAB, d_model=d, n_layers=layers, n_heads=4, d_ff=4 * d,
                max_seq_len=max_len)


# --------------------------------------------------------------------------------------------
# memory probes
# --------------------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


class _Peak:
    """Peak memory of one phase: RSS (CPU; VmHWM reset by clear_refs) or CUDA allocations."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def start(self) -> None:
        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
                self.reset = True
            except OSError:
                self.reset = False
            self.base = _status_kb("VmRSS") * 1024

    def stop(self) -> dict:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            return {"peak_mib": peak / 2**20, "growth_mib": (peak - self.base) / 2**20}
        peak = _status_kb("VmHWM") * 1024
        return {"peak_mib": peak / 2**20,
                "growth_mib": (peak - self.base) / 2**20 if self.reset else None}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------
# one measurement (in a fresh process)
# --------------------------------------------------------------------------------------------
def _static_step(decode, tok, states: dict):
    """One greedy step on static buffers: ``step()`` reads the static token and state and
    writes the next token and the new state back into them (what a CUDA graph replays).

    ``decode(token (B,), states) -> logits (B, V)``: ResNet-BK's ``_decode_step`` (it
    replaces the entries of ``states``) or the baseline's KV-cache step (it writes into the
    cache's tensors in place; the copy back is then a copy of a tensor onto itself, a no-op).
    Returns (step, static token, static states)."""
    static_tok = tok.clone()
    static = {k: ({kk: vv.clone() for kk, vv in s.items() if vv is not None}
                  if isinstance(s, dict) else s.clone()) for k, s in states.items()}

    def step():
        st = {k: (dict(s) if isinstance(s, dict) else s) for k, s in static.items()}
        logits = decode(static_tok, st)
        for k, s in st.items():
            if isinstance(s, dict):
                for kk, vv in s.items():
                    if vv is not None:
                        static[k][kk].copy_(vv)
            else:
                static[k].copy_(s)
        static_tok.copy_(logits.argmax(-1))

    return step, static_tok, static


def _graph_decoder(decode, tok, states: dict):
    """A CUDA graph of :func:`_static_step`. Returns (replay, static token, static states)."""
    import torch

    step, static_tok, static = _static_step(decode, tok, states)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs asks
        saved = (static_tok.clone(), {k: ({kk: vv.clone() for kk, vv in s.items()}
                                           if isinstance(s, dict) else s.clone())
                                      for k, s in static.items()})
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    static_tok.copy_(saved[0])  # undo the warm-up and capture steps
    for k, s in saved[1].items():
        if isinstance(s, dict):
            for kk, vv in s.items():
                static[k][kk].copy_(vv)
        else:
            static[k].copy_(s)
    return graph.replay, static_tok, static


def _generate_row(kind: str, model, prompt, n_new: int) -> dict:
    """``gen`` (the project's generate) or ``hf`` (transformers' generate) row, greedy."""
    import torch

    from bkmodel.generation import timed_generate

    if kind == "gen":
        model.generate(prompt[:, :64], 4, temperature=0)  # warm-up
        out, st = timed_generate(model, prompt, n_new, temperature=0)
    else:
        import bkmodel.hf as H

        hf = H.ResNetBKForCausalLM(H.ResNetBKConfig(config=model.config.to_dict())).eval()
        hf.model = model
        kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
        H.timed_generate(hf, prompt[:, :64], max_new_tokens=4,
                         attention_mask=torch.ones_like(prompt[:, :64]), **kw)  # warm-up
        out, st = H.timed_generate(hf, prompt, max_new_tokens=n_new,
                                   attention_mask=torch.ones_like(prompt), **kw)
        ref = model.generate(prompt, n_new, temperature=0)
        if not torch.equal(out, ref):
            raise RuntimeError("transformers' greedy generate disagrees with "
                               "LanguageModel.generate: not reported")
        import transformers

        st_row = {"transformers": transformers.__version__}
    row = {"model": kind, "prompt_len": prompt.shape[1], "new_tokens": st.new_tokens,
           "prefill_s": st.prefill_s, "decode_s": st.decode_s,
           "decode_steps": st.decode_steps, "decode_tokens_per_s": st.decode_tokens_per_s,
           "ms_per_token": st.ms_per_token, "cuda_graph": False, "state_bytes": None,
           "generate_mem": {"peak_mib": st.peak_memory_mib,
                            "growth_mib": st.memory_growth_mib, "kind": st.memory_kind}}
    return row | (st_row if kind == "hf" else {})


def _state_bytes(states: dict) -> int:
    """Bytes of every tensor of a decoding state (a dict of tensors or of dicts of them)."""
    return sum(t.numel() * t.element_size() for s in states.values()
               for t in (s.values() if isinstance(s, dict) else [s]) if t is not None)


def child(kind: str, L: int, n_new: int, device: str, d: int, layers: int, threads: int,
          cuda_graph: bool, tf_cache: bool = True) -> dict:
    import torch

    from bkmodel.baseline import TransformerBaseline, TransformerConfig
    from bkmodel.model import LanguageModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    max_len = L + n_new + CHECK_STEPS  # the Transformer's cache: prompt, check, decoding
    if kind in ("bk", "gen", "hf"):
        model = LanguageModel(**_bk_cfg(d, layers))
    else:
        model = TransformerBaseline(TransformerConfig(**_tf_cfg(d, layers, max_len)))
    model = model.to(device).eval()
    g = torch.Generator().manual_seed(L)
    prompt = torch.randint(0, VOCAB, (1, L), generator=g).to(device)
    peak = _Peak(device)
    if kind in ("gen", "hf"):
        return _generate_row(kind, model, prompt, n_new)
    row: dict = {"model": kind, "prompt_len": L, "new_tokens": n_new}
    with torch.no_grad():
        if kind == "tf" and not tf_cache:  # the cacheless generate (--tf-no-cache)
            model.generate(prompt[:, :64], 2, temperature=0, use_cache=False)  # warm-up
            peak.start()
            t0 = time.perf_counter()
            model(prompt)
            _sync(device)
            row["prefill_s"] = time.perf_counter() - t0
            row["prefill_mem"] = peak.stop()
            row["state_bytes"] = 0
            row["kv_cache"] = False
            row["kv_cache_bytes_if_cached"] = 2 * layers * d * (L + n_new) * 4
            row["cuda_graph"] = False
            peak.start()
            t0 = time.perf_counter()
            model.generate(prompt, n_new, temperature=0, use_cache=False)
            _sync(device)
            dt = time.perf_counter() - t0
        else:
            if kind == "bk":
                model.generate(prompt[:, :64], 4, temperature=0)  # warm-up
                decode = model._decode_step  # replaces the entries of the state dict

                def prefill():
                    states = model._prefill(prompt)
                    return states.pop("logits"), states
            else:
                model.generate(prompt[:, :64], 4, temperature=0, use_cache=True)  # warm-up
                row["kv_cache"] = True

                def decode(t, cache):  # writes into the cache in place
                    return model.step(t, cache)[0]

                def prefill():
                    return model.prefill(prompt, max_len)
            peak.start()
            t0 = time.perf_counter()
            logits, states = prefill()
            _sync(device)
            row["prefill_s"] = time.perf_counter() - t0
            row["prefill_mem"] = peak.stop()
            row["state_bytes"] = _state_bytes(states)
            if kind == "tf":
                row["kv_bytes"] = sum(states[str(i)][k].numel() * states[str(i)][k].element_size()
                                      for i in range(layers) for k in ("k", "v"))
                row["cache_positions"] = max_len
            tok = logits.argmax(-1)  # (1,)
            use_graph = cuda_graph and device.startswith("cuda")
            row["cuda_graph"] = use_graph
            if use_graph:
                ref_states = {k: (dict(s) if isinstance(s, dict) else s)
                              for k, s in states.items()}
                replay, static_tok, _ = _graph_decoder(decode, tok, states)
                # check: the graph's first tokens equal the eager loop's
                eager, t = [], tok
                for _ in range(CHECK_STEPS):
                    t = decode(t, ref_states).argmax(-1)
                    eager.append(int(t))
                got = []
                for _ in range(CHECK_STEPS):
                    replay()
                    got.append(int(static_tok))
                if got != eager:
                    raise RuntimeError(f"CUDA-graph decode disagrees with eager: {got} vs "
                                       f"{eager}")
                del ref_states
                peak.start()
                t0 = time.perf_counter()
                for _ in range(n_new):
                    replay()
                _sync(device)
            else:
                peak.start()
                t0 = time.perf_counter()
                for _ in range(n_new):
                    logits = decode(tok, states)
                    tok = logits.argmax(-1)
                _sync(device)
            dt = time.perf_counter() - t0
        row["decode_mem"] = peak.stop()
    row["decode_s"] = dt
    row["decode_tokens_per_s"] = n_new / dt
    return row


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------
def _device_label(device: str) -> str:
    if not device.startswith("cuda"):
        return "cpu"
    import torch

    return re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(device)).strip("-")


def _machine(device: str, threads: int) -> dict:
    import torch

    m = {"platform": platform.platform(), "processor": platform.processor(),
         "cpu_count": os.cpu_count(), "python": platform.python_version(),
         "torch": torch.__version__, "torch_threads": threads, "device": device}
    if device.startswith("cuda"):
        m["gpu"] = torch.cuda.get_device_name(device)
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "L", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="prompts of 256, 1k, 4k tokens")
    ap.add_argument("--lengths", type=int, nargs="+", default=None,
                    help="prompt lengths (default 1024 4096 16384 65536)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--new-tokens", type=int, default=64, help="ResNet-BK decoded tokens")
    ap.add_argument("--tf-new-tokens", type=int, default=None,
                    help="Transformer decoded tokens (default: --new-tokens with the KV "
                         "cache, 4 with --tf-no-cache, where each is a forward over the "
                         "context)")
    ap.add_argument("--tf-no-cache", action="store_true",
                    help="Transformer rows: the old cacheless generate (use_cache=False), "
                         "every token a forward over the whole context")
    ap.add_argument("--tf-max-len", type=int, default=None,
                    help="skip the Transformer above this prompt length (time)")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    ap.add_argument("--no-cuda-graph", action="store_true",
                    help="CUDA: eager decode steps instead of one CUDA graph per step")
    ap.add_argument("--hf", action="store_true",
                    help="add rows: LanguageModel.generate and transformers' generate "
                         "(bkmodel.hf) on the same ResNet-BK model")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    graph = not args.no_cuda_graph
    if args.child:
        kind, L, n = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(child(kind, L, n, args.device, args.d_model, args.n_layers,
                               args.threads, graph, tf_cache=not args.tf_no_cache)))
        return 0
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("decode_speed: --device cuda but CUDA is not available", file=sys.stderr)
            return 2
    lengths = args.lengths or ([256, 1024, 4096] if args.quick else [1024, 4096, 16384, 65536])
    plan = [("bk", L, args.new_tokens) for L in lengths]
    if args.hf:
        plan += [(k, L, args.new_tokens) for k in ("gen", "hf") for L in lengths]
    tf_new = args.tf_new_tokens or (4 if args.tf_no_cache else args.new_tokens)
    plan += [("tf", L, tf_new) for L in lengths
             if args.tf_max_len is None or L <= args.tf_max_len]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    common = ["--device", args.device, "--d-model", str(args.d_model), "--n-layers",
              str(args.n_layers), "--threads", str(args.threads)]
    common += ["--no-cuda-graph"] if not graph else []
    common += ["--tf-no-cache"] if args.tf_no_cache else []
    rows = []
    for kind, L, n in plan:
        p = subprocess.run([sys.executable, __file__, "--child", kind, str(L), str(n), *common],
                           env=env, capture_output=True, text=True, check=False)
        if p.returncode:
            print(p.stderr, file=sys.stderr)
            return 1
        r = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append(r)
        if kind in ("gen", "hf"):
            mem = r["generate_mem"]
            print(f"{kind:3s} prompt {L:>7,}: prefill {r['prefill_s']:8.2f} s, decode "
                  f"{r['decode_tokens_per_s']:9.2f} tokens/s ({r['ms_per_token']:.2f} ms/token),"
                  f" peak {mem['peak_mib']:8.1f} MiB (+{mem['growth_mib'] or 0:.1f} whole call)",
                  flush=True)
            continue
        print(f"{kind:3s} prompt {L:>7,}: prefill {r['prefill_s']:8.2f} s, decode "
              f"{r['decode_tokens_per_s']:9.2f} tokens/s, peak {r['decode_mem']['peak_mib']:8.1f}"
              f" MiB (+{r['decode_mem']['growth_mib'] or 0:.1f} decoding), state "
              f"{r['state_bytes']:,} B", flush=True)
    if args.hf:
        print("\nms per generated token: decode loop (bk) / LanguageModel.generate (gen) / "
              "transformers generate (hf):")
        by = {(r["model"], r["prompt_len"]): r for r in rows}
        for L in lengths:
            ms = [1e3 / by[(k, L)]["decode_tokens_per_s"] for k in ("bk", "gen", "hf")]
            print(f"  {L:>7,}: {ms[0]:.2f} / {ms[1]:.2f} / {ms[2]:.2f}  (hf / gen x"
                  f"{ms[2] / ms[1]:.2f}, hf / bk x{ms[2] / ms[0]:.2f})")
    print("\ndecode tokens/s against the shortest prompt of each model:")
    for kind in ("bk", "tf", "gen", "hf"):
        series = [r for r in rows if r["model"] == kind]
        for r in series[1:]:
            print(f"  {kind:3s} {r['prompt_len']:>7,} / {series[0]['prompt_len']:,}: x"
                  f"{r['decode_tokens_per_s'] / series[0]['decode_tokens_per_s']:.3f}")
    doc = {
        "benchmark": "decode_speed",
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": _machine(args.device, args.threads),
        "models": {"bk": _bk_cfg(args.d_model, args.n_layers),
                   "transformer": _tf_cfg(args.d_model, args.n_layers, 0)
                   | {"max_seq_len": "prompt_len + new_tokens + 8"},
                   "init": "fresh, seed 0", "batch": 1, "decoding": "greedy",
                   "transformer_kv_cache": not args.tf_no_cache}
        | ({"gen": "LanguageModel.generate (greedy) on the bk model",
            "hf": "bkmodel.hf.ResNetBKForCausalLM.generate (greedy, recurrent cache) on the "
                  "bk model; tokens checked equal to gen"} if args.hf else {}),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / (f"decode_speed_{'hf_' if args.hf else ''}"
                                 f"{_device_label(args.device)}_"
                                 f"{_dt.date.today().isoformat()}.json")
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
