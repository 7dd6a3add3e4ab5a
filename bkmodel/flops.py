"""Analytic FLOPs of ResNet-BK and the Transformer baseline, per layer, and ``bk flops``.

Convention (that of :class:`torch.utils.flop_counter.FlopCounterMode`, against which the
tests check these formulas): a matrix product of an (M, K) by a (K, N) matrix costs
``2·M·K·N`` FLOPs; a depthwise convolution ``2·channels·width·output_length``; embeddings,
norms, activations, gates and other elementwise work are **not** counted. Attention is
counted as ``QKᵀ`` and ``AV`` over the full T × T score matrix (``4·T²·d`` per layer and
sequence, what FlopCounterMode reports for the math path); the causal half that an
efficient kernel actually computes is given separately as ``attention_causal``.

The BK scan is elementwise (no matrix products), so FlopCounterMode does not see it; it is
reported as ``scan`` with its own count per token and chain: the recurrence
``g = 1/(alpha - beta g_prev)`` in real arithmetic is 10 FLOPs (see
``bkmodel/ops/bk_scan/torch_scan.py``: two fused multiply-adds, a squared modulus, one
reciprocal, two products), so ``10·T·S`` forward for S scanned chains. The chunked parallel
form adds the chunk maps (one row of a 2×2 complex product per element, about 16 FLOPs)
and the carries (one Möbius map per chunk).

Forward FLOPs only; a training step costs about 3× the matrix-product FLOPs (backward: two
products per forward product).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["LayerFlops", "bk_flops", "transformer_flops", "flops_table", "configure_parser",
           "run"]

SCAN_FLOPS_PER_STEP = 10


@dataclass(frozen=True)
class LayerFlops:
    """Forward FLOPs of one part of the model for one sequence of T tokens."""

    name: str
    matmul: int  # counted like FlopCounterMode (products and convolutions)
    other: int = 0  # not seen by FlopCounterMode (the BK scan), counted analytically
    note: str = ""

    @property
    def total(self) -> int:
        return self.matmul + self.other


def _linear(tokens: int, d_in: int, d_out: int) -> int:
    return 2 * tokens * d_in * d_out


def _ffn(cfg: Any, T: int, d: int) -> list[tuple[str, int, str]]:
    """(name, FLOPs, note) of a block's feed-forward (MLP or MoE) for T tokens."""
    hidden = cfg.ffn_mult * d
    mlp = _linear(T, d, hidden) + _linear(T, hidden, d)
    if cfg.ffn == "none":
        return []
    if cfg.ffn == "mlp":
        return [("ffn", mlp, f"MLP {d}->{hidden}->{d}")]
    rows = []
    if cfg.router == "learned":
        rows.append(("router", _linear(T, d, cfg.num_experts), "learned top-k gate"))
    rows.append(("experts (sparse)", cfg.top_k * mlp,
                 f"top-{cfg.top_k} of {cfg.num_experts}; dense dispatch computes all "
                 f"{cfg.num_experts}: {cfg.num_experts * mlp:,}"))
    return rows


def _front_rows(p: str, c: Any, T: int, n_in: int, chains: int) -> list[LayerFlops]:
    """in_proj (d -> n_in), the optional depthwise convolution and the scan of ``chains``
    chains: the front of the selective and green layers."""
    rows = [LayerFlops(p + "bk.in_proj", _linear(T, c.d_model, n_in), note=f"d->{n_in}")]
    if c.conv_size:
        k = c.conv_size
        rows.append(LayerFlops(p + "bk.conv", 2 * n_in * k * (T + k - 1),
                               note=f"depthwise, width {k}"))
    rows.append(LayerFlops(p + "bk.scan", 0, SCAN_FLOPS_PER_STEP * T * chains,
                           note=f"{chains} chains, elementwise"))
    return rows


def _green_rows(p: str, c: Any, T: int) -> list[LayerFlops]:
    """Rows of a Green's-function attention layer (bkmodel/ops/green_attn/chunk.py): the
    chunked form pads T to nc chunks of L = min(chunk_size, T) tokens."""
    d, H = c.d_model, c.n_channels
    dk, dv = c.key_dim or d // H, c.value_dim or d // H
    n_op = 3 * H if c.selective else H
    n_in = n_op + H * (2 * dk + dv)
    L = max(1, min(c.chunk_size, T))
    nc = -(-T // L)
    rows = _front_rows(p, c, T, n_in, H)
    intra = H * nc * (2 * L * L * dk + 2 * 2 * L * L * dv)  # q k^T; (P W_re) v, (P W_im) v
    states = H * nc * 2 * (2 * dk) * L * dv  # [Re c k, Im c k]^T v
    # chunk-to-chunk propagation, a complex product: counted as FlopCounterMode counts it
    # (2mnk, like a real one; its real cost is 4x that, negligible for nc << T)
    carry = H * 2 * (nc + 1) ** 2 * dk * dv
    inter = H * nc * 2 * 2 * L * dk * dv  # q S_in (real and imaginary parts)
    rows.append(LayerFlops(p + "bk.green_attn", intra + states + carry + inter,
                           note=f"{H} heads, dk {dk}, dv {dv}, {nc} chunks of {L}"))
    if c.output_gate:
        rows.append(LayerFlops(p + "bk.gate", _linear(T, d, H * dv)))
    rows.append(LayerFlops(p + "bk.out", _linear(T, 2 * H * dv, d)))
    return rows


def bk_flops(config: Any, T: int) -> list[LayerFlops]:
    """Per-layer forward FLOPs of a :class:`bkmodel.model.LanguageModel` for one sequence
    of T tokens (``config``: its :class:`~bkmodel.config.ModelConfig`)."""
    c, d, C = config, config.d_model, config.n_channels
    rows: list[LayerFlops] = []
    for i in range(c.n_layers):
        p = f"block{i}."
        if c.layer == "green":
            rows += _green_rows(p, c, T)
        elif c.layer == "selective":
            S = C * c.n_energies
            n_in = 3 * C if c.selective else C
            rows += _front_rows(p, c, T, n_in, S)
            if c.output_gate:
                rows.append(LayerFlops(p + "bk.gate", _linear(T, d, 2 * S)))
            rows.append(LayerFlops(p + "bk.out", _linear(T, 2 * S, d)))
        else:
            if c.potential == "moe":
                hidden = c.ffn_mult * d
                mlp = _linear(T, d, hidden) + _linear(T, hidden, d)
                rows.append(LayerFlops(p + "bk.v_moe", _linear(T, d, c.num_experts)
                                       + c.top_k * mlp, note="potential MoE (sparse)"))
            rows.append(LayerFlops(p + "bk.v_proj", _linear(T, d, C)))
            n_scans = 1 if c.bk_mode == "causal" else 2
            rows.append(LayerFlops(p + "bk.scan", 0, n_scans * SCAN_FLOPS_PER_STEP * T * C,
                                   note=f"{C} chains, elementwise"))
            rows.append(LayerFlops(p + "bk.out", _linear(T, 2 * C, d)))
        for name, f, note in _ffn(c, T, d):
            rows.append(LayerFlops(p + name, f, note=note))
    rows.append(LayerFlops("lm_head", _linear(T, d, c.vocab_size)))
    return rows


def transformer_flops(config: Any, T: int) -> list[LayerFlops]:
    """Per-layer forward FLOPs of :class:`bkmodel.baseline.TransformerBaseline` for one
    sequence of T tokens (``config``: its :class:`~bkmodel.baseline.TransformerConfig`)."""
    c, d = config, config.d_model
    rows: list[LayerFlops] = []
    for i in range(c.n_layers):
        p = f"block{i}."
        rows.append(LayerFlops(p + "attn.qkv", _linear(T, d, 3 * d)))
        rows.append(LayerFlops(p + "attn.scores", 4 * T * T * d,
                               note=f"QK^T and AV, full T x T; causal half {2 * T * T * d:,}"))
        rows.append(LayerFlops(p + "attn.proj", _linear(T, d, d)))
        rows.append(LayerFlops(p + "ffn", _linear(T, d, c.d_ff) + _linear(T, c.d_ff, d),
                               note=f"MLP {d}->{c.d_ff}->{d}"))
    rows.append(LayerFlops("lm_head", _linear(T, d, c.vocab_size)))
    return rows


def model_flops(model: Any, T: int) -> list[LayerFlops]:
    """Per-layer forward FLOPs of either model (dispatch on its type)."""
    from bkmodel.baseline import TransformerBaseline

    if isinstance(model, TransformerBaseline):
        return transformer_flops(model.config, T)
    return bk_flops(model.config, T)


def flops_table(rows: list[LayerFlops], T: int) -> str:
    """A text table: per part, FLOPs per sequence and per token, and the totals."""
    lines = [f"{'part':<24}{'matmul FLOPs':>16}{'scan FLOPs':>14}{'per token':>14}  note",
             "-" * 86]
    for r in rows:
        lines.append(f"{r.name:<24}{r.matmul:>16,}{r.other:>14,}{r.total / T:>14,.0f}  {r.note}")
    mm, other = sum(r.matmul for r in rows), sum(r.other for r in rows)
    lines.append("-" * 86)
    lines.append(f"{'total (forward)':<24}{mm:>16,}{other:>14,}{(mm + other) / T:>14,.0f}")
    lines.append(f"training step ~ 3 x matmul + scan forward/backward: {3 * mm + 3 * other:,}")
    return "\n".join(lines)


# -- CLI -----------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", default=None,
                        help="a run directory or checkpoint (default: a preset's models)")
    parser.add_argument("--preset", default="small",
                        help="without RUN: the preset whose two models are counted")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="tokens per sequence (default: the model's training length)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    import sys

    models: dict[str, Any] = {}
    try:
        if args.run is not None:
            from bkmodel.checkpoint import CheckpointError, load_run

            try:
                model, _, meta = load_run(args.run)
            except (CheckpointError, FileNotFoundError) as exc:
                print(f"bk flops: {exc}", file=sys.stderr)
                return 2
            models[str(args.run)] = model
        else:
            from bkmodel.factory import build_model
            from bkmodel.presets import TrainConfig

            for kind in ("bk", "transformer"):
                cfg = TrainConfig.from_preset(args.preset, model=kind)
                models[f"{args.preset}-{kind}"] = build_model(cfg, cfg.vocab_size)
    except ValueError as exc:
        print(f"bk flops: {exc}", file=sys.stderr)
        return 2
    out = {}
    for name, model in models.items():
        conf = model.config
        T = args.seq_len or getattr(conf, "n_seq", None) or conf.max_seq_len
        if T < 1:
            print("bk flops: --seq-len must be >= 1", file=sys.stderr)
            return 2
        rows = model_flops(model, T)
        if args.json:
            out[name] = {"seq_len": T, "params": model.num_params(),
                         "rows": [{"name": r.name, "matmul": r.matmul, "scan": r.other,
                                   "note": r.note} for r in rows]}
        else:
            print(f"\n{name}: {model.num_params():,} parameters, T = {T}")
            print(flops_table(rows, T))
    if args.json:
        print(json.dumps(out, indent=1))
    return 0
