"""Scaled dot-product attention, softmax(QKᵀ/√d + mask)·V (Vaswani et al. 2017), for every transformer here.

One call, ``attend``, so that the ViT, the text encoder and the character LM share a single rule: on
the CPU, bf16/fp16 attention over at most ``CPU_FP32_MAX_KEYS`` keys runs in fp32. PyTorch's fused CPU
attention kernel is slower in bf16 than in fp32 at this library's sequence lengths, while the matmuls
around it are 2–3× faster in bf16 on a CPU with native bf16. Measured forward + backward on a 2-core
AMD EPYC with AVX-512 bf16 (``benchmarks/bench_cpu_attention.py``,
``benchmarks/results/cpu_attention_*.md``), bf16 inputs through fp32 against PyTorch's bf16 kernel:
2.9× faster at 17 tokens (ViT-Tiny on the 8×8 digits), 2.0× at 65 (on CIFAR-10), level at 257 and 513
(1.05×, 1.03×), 0.89× at 1,025: hence the crossover at 512 keys. So under ``TrainConfig(amp=True)`` on
the CPU the linear layers take the bf16 speed-up and attention keeps fp32's speed and precision (whole
ViT training steps of the ``cpu`` recipes 1.3–1.6× faster than fp32, against 0.9–1.2× with bf16
attention). On a GPU, in fp32, and on long sequences this is ``F.scaled_dot_product_attention``
unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_REDUCED = (torch.bfloat16, torch.float16)
CPU_FP32_MAX_KEYS = 512  # measured crossover (module docstring): longer, PyTorch's bf16 kernel is faster


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal)`` (B×H×L×d each), in fp32 on the CPU
    when the inputs are bf16/fp16 or CPU autocast is on and there are at most ``CPU_FP32_MAX_KEYS`` keys;
    the result has q's dtype."""
    if (
        q.device.type == "cpu"
        and k.shape[-2] <= CPU_FP32_MAX_KEYS
        and (q.dtype in _REDUCED or torch.is_autocast_enabled("cpu"))
    ):
        if attn_mask is not None and attn_mask.is_floating_point():
            attn_mask = attn_mask.float()
        with torch.autocast("cpu", enabled=False):  # autocast would cast the fp32 inputs back to bf16
            out = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=attn_mask, is_causal=is_causal
            )
        return out.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


__all__ = ["attend"]
