"""Model FLOPs per training step and the machine's matrix-product peak: what MFU (model FLOPs utilization) is made of.

FLOPs of one training step (forward + backward), for a batch, by the usual accounting (Kaplan et al. 2020; PaLM,
Chowdhery et al. 2022, appendix B): every weight matrix a token goes through costs 2 FLOPs per weight in the forward
pass and 4 in the backward pass (input and weight gradients), so

    FLOPs = 6 * N_token * tokens  +  6 * N_seq * sequences  +  12 * L * d_attn * s * tokens

- N_token: the weights of the matrix products applied to every token (the Linear / GPT-2 Conv1D layers: attention
  projections, feed-forward, and the LM head of causal and seq2seq models, which is a (vocab x d) product even when
  it is tied to the input embedding). Embedding lookups, biases, layer norms and activations are not counted
  (lookups are not products; the rest is a few per cent at most and not what limits the step).
- N_seq: weights used once per sequence (BERT's pooler and classification head).
- 12 * L * d_attn * s per token: attention scores (Q K^T) and their weighted sum (A V), 2 * s * d_attn FLOPs each per
  token and layer forward, times 3 for forward + backward; s is the sequence length the token attends over. Causal
  masks are counted as full squares (the PaLM convention; kernels compute most of the masked half anyway).
- Encoder-decoder models: encoder weights over source tokens, decoder weights and the LM head over target tokens,
  the cross-attention key/value projections over source tokens (once per decoder layer), self-attention over each
  side's own length and cross-attention over target x source.

Two counts come out of a batch: `computed` (every position of the padded batch: what the hardware did) and `model`
(real tokens only, sequence by sequence: the useful work). MFU = model FLOPs / time / peak. The formula is checked
against torch.utils.flop_counter on a real batch by benchmarks/mfu.py (the "formula / counted" column).

`matmul_peak()` measures what the matrix-product kernels reach on this machine at the shapes a model uses.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

_PER_SEQUENCE = re.compile(r"(^|\.)(pooler|classifier)(\.|$)")
_CROSS_KV = re.compile(r"(EncDecAttention\.[kv]|encoder_attn\.[kv]_proj)$")


@dataclass
class FlopModel:
    """The counts the formula needs, read once from a model."""

    encoder_token_weights: int  # per source/input token
    decoder_token_weights: int  # per target token (incl. the LM head); 0 for encoder-only and decoder-only models
    cross_kv_weights: int  # per source token (cross-attention keys and values of every decoder layer)
    sequence_weights: int  # per sequence (pooler, classifier)
    encoder_layers: int
    decoder_layers: int
    attention_width: int  # heads * head dimension
    encoder_decoder: bool

    def summary(self) -> dict[str, Any]:
        return {"N_token": self.encoder_token_weights + self.decoder_token_weights + self.cross_kv_weights,
                "N_seq": self.sequence_weights, "layers": self.encoder_layers + self.decoder_layers,
                "d_attn": self.attention_width}


def _matmul_layers(model: Any) -> list[tuple[str, int]]:
    import torch

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover
        Conv1D = ()
    return [(name, module.weight.numel()) for name, module in model.named_modules()
            if isinstance(module, (torch.nn.Linear, Conv1D))]


def flop_model(model: Any) -> FlopModel:
    config = model.config
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    heads = getattr(config, "num_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "d_kv", None) or getattr(config, "head_dim", None)
    width = getattr(config, "d_model", None) or config.hidden_size
    attention_width = heads * head_dim if head_dim else width
    encoder_prefix = None
    if encoder_decoder:
        encoder = model.get_encoder()
        encoder_prefix = next(name for name, module in model.named_modules() if module is encoder) + "."
    encoder_weights = decoder_weights = cross = sequence = 0
    for name, count in _matmul_layers(model):
        if _PER_SEQUENCE.search(name):
            sequence += count
        elif encoder_prefix is None or name.startswith(encoder_prefix):
            encoder_weights += count
        elif _CROSS_KV.search(name):
            cross += count
        else:
            decoder_weights += count
    if encoder_decoder:
        encoder_layers = getattr(config, "num_layers", None) or config.encoder_layers
        decoder_layers = getattr(config, "num_decoder_layers", None) or config.decoder_layers
    else:
        encoder_layers, decoder_layers = config.num_hidden_layers, 0
    return FlopModel(encoder_weights, decoder_weights, cross, sequence, encoder_layers, decoder_layers,
                     attention_width, encoder_decoder)


def _lengths(batch: dict[str, Any]) -> tuple[list[int], int, list[int], int]:
    """Real lengths and padded width of the source (input_ids) and, for seq2seq, the target (labels) side."""
    ids = batch["input_ids"]
    width = int(ids.shape[-1])
    mask = batch.get("attention_mask")
    sources = mask.sum(-1).tolist() if mask is not None else [width] * int(ids.shape[0])
    labels = batch.get("labels")
    if labels is None or labels.dim() < 2:
        return sources, width, [], 0
    decoder_inputs = batch.get("decoder_input_ids")
    target_width = int((decoder_inputs if decoder_inputs is not None else labels).shape[-1])
    return sources, width, (labels != -100).sum(-1).tolist(), target_width


def step_flops(counts: FlopModel, batch: dict[str, Any]) -> tuple[float, float]:
    """(model FLOPs on real tokens, FLOPs computed on every padded position) of one forward+backward pass."""
    sources, width, targets, target_width = _lengths(batch)
    rows = len(sources)

    def encoder(s: float) -> float:
        return 6 * (counts.encoder_token_weights + counts.cross_kv_weights) * s + \
            12 * counts.encoder_layers * counts.attention_width * s * s

    def decoder(t: float, s: float) -> float:
        return 6 * counts.decoder_token_weights * t + 12 * counts.decoder_layers * counts.attention_width * t * (t + s)

    if counts.encoder_decoder:
        model = sum(encoder(s) + decoder(t, s) for s, t in zip(sources, targets, strict=True))
        computed = rows * (encoder(width) + decoder(target_width, width))
    else:
        model = sum(encoder(s) for s in sources)
        computed = rows * encoder(width)
    sequence = 6 * counts.sequence_weights * rows
    return model + sequence, computed + sequence


def counted_flops(model: Any, batch: dict[str, Any]) -> float:
    """FLOPs of one forward+backward pass as torch.utils.flop_counter counts them (matrix products and attention
    kernels, whole padded batch): the check on `step_flops`' computed count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_backward_flop, sdpa_flop

    aten = torch.ops.aten
    # The CPU's fused attention kernels are not in flop_counter's table (torch 2.13): same formulas as on CUDA.
    for forward, backward in ((aten._scaled_dot_product_flash_attention_for_cpu,
                               aten._scaled_dot_product_flash_attention_for_cpu_backward),):
        try:
            register_flop_formula(forward)(sdpa_flop)
            register_flop_formula(backward)(sdpa_backward_flop)
        except (RuntimeError, ValueError):
            pass  # registered already
    model.train()
    with FlopCounterMode(display=False) as counter:
        loss = model(**batch).loss
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def matmul_peak(shapes: list[tuple[int, int, int]], dtype: str, seconds: float = 1.0) -> dict[str, float]:
    """FLOP/s of `torch.matmul` for each (m, k, n) shape in `dtype` ('float32' or 'bfloat16') on all of torch's
    threads: the best of repeated timings, each at least `seconds` / 5 long. Returns {"MxKxN": flop/s, ..., "peak"}."""
    import torch

    results: dict[str, float] = {}
    kind = getattr(torch, dtype)
    for m, k, n in shapes:
        a = torch.randn(m, k, dtype=kind)
        b = torch.randn(k, n, dtype=kind)
        for _ in range(3):
            torch.matmul(a, b)
        best = 0.0
        for _ in range(5):
            start, repeats = time.perf_counter(), 0
            while time.perf_counter() - start < seconds / 5:
                torch.matmul(a, b)
                repeats += 1
            best = max(best, 2 * m * k * n * repeats / (time.perf_counter() - start))
        results[f"{m}x{k}x{n}"] = best
    results["peak"] = max(results.values())
    return results
