"""A small causal character-level transformer language model, its sampler and its completion log-probs.

Token and learned position embeddings, ``depth`` pre-norm blocks (x + causal attention(LN(x)), then
x + MLP(LN(x)); Vaswani et al. 2017 with GPT-2's pre-norm, Radford et al. 2019), a final LayerNorm and a
linear read-out to next-token logits. Attention is
``torch.nn.functional.scaled_dot_product_attention(..., is_causal=True)``: position t sees positions ≤ t.

Sequences are a fixed-length prompt followed by a completion (see :mod:`sslcookbook.data.arithmetic`):
:func:`generate` samples completions token by token (with a key/value cache: each block keeps the
keys and values of the positions so far, so a new token runs through the model alone),
:func:`completion_log_probs` scores given ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .text import TransformerBlock


class CharLM(nn.Module):
    """Token ids (int64 B×L, L ≤ ``context_length``) → next-token logits B×L×``vocab_size``.

    Args:
        vocab_size: the number of tokens.
        context_length: the longest sequence (prompt + completion) in tokens.
        width: the embedding width; ``heads`` must divide it.
        depth: the number of transformer blocks.
    """

    def __init__(self, vocab_size: int, context_length: int, width: int = 64, depth: int = 2,
                 heads: int = 4, mlp_ratio: int = 4):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}; choose heads that divide it")
        self.vocab_size, self.context_length = vocab_size, context_length
        self.token = nn.Embedding(vocab_size, width)
        self.position = nn.Parameter(0.02 * torch.randn(context_length, width))
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, vocab_size)

    def reset_parameters(self) -> None:
        """Re-draw the position embedding, which no submodule's ``reset_parameters`` reaches (what
        ``evaluate.random_encoder_like`` calls after the submodules' own ``reset_parameters``)."""
        with torch.no_grad():
            self.position.normal_(0.0, 0.02)

    def forward(self, ids: torch.Tensor, cache: list[dict] | None = None) -> torch.Tensor:
        """Logits of every position of ``ids``. With ``cache`` (:meth:`new_cache`), ``ids`` continue the
        sequence the cache holds: the whole prompt on the first call, then one token per call."""
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"ids must be int64 B×L token ids, got {ids.dtype} of shape {tuple(ids.shape)}")
        start = cache[0]["k"].shape[2] if cache and "k" in cache[0] else 0
        if start + ids.shape[1] > self.context_length:
            raise ValueError(f"sequence of {start + ids.shape[1]} tokens is longer than context_length "
                             f"{self.context_length}; build the model with a longer context")
        x = self.token(ids) + self.position[start : start + ids.shape[1]]
        for block, block_cache in zip(self.blocks, cache or [None] * len(self.blocks)):
            x = block(x, causal=True, cache=block_cache)
        return self.readout(self.norm(x))

    def new_cache(self) -> list[dict]:
        """An empty key/value cache, one dict per block, for :func:`generate`."""
        return [{} for _ in self.blocks]


def completion_mask(completions: torch.Tensor, eos_id: int) -> torch.Tensor:
    """True for the tokens of each completion up to and including its first end token (B×T bool)."""
    is_end = completions == eos_id
    ended_before = (is_end.long().cumsum(dim=1) - is_end.long()) > 0
    return ~ended_before


def token_log_probs(model: nn.Module, prompts: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
    """log p(completion token t | prompt, earlier completion tokens), B×T (every position; mask it)."""
    if prompts.shape[0] != completions.shape[0]:
        raise ValueError(f"{prompts.shape[0]} prompts but {completions.shape[0]} completions")
    sequence = torch.cat([prompts, completions[:, :-1]], dim=1)
    logits = model(sequence)[:, prompts.shape[1] - 1 :]  # the positions that predict the completion
    return torch.gather(F.log_softmax(logits.float(), dim=-1), 2, completions.unsqueeze(-1)).squeeze(-1)


def completion_log_probs(model: nn.Module, prompts: torch.Tensor, completions: torch.Tensor,
                         eos_id: int) -> torch.Tensor:
    r"""The log-probability of each whole completion, :math:`\log \pi(y \mid x) = \sum_t \log
    \pi(y_t \mid x, y_{<t})` over its tokens up to and including the end token; B."""
    mask = completion_mask(completions, eos_id)
    return (token_log_probs(model, prompts, completions) * mask).sum(dim=1)


@torch.no_grad()
def generate(model: nn.Module, prompts: torch.Tensor, max_new_tokens: int, eos_id: int, pad_id: int,
             temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample completions B×``max_new_tokens``: softmax(logits / temperature), or the argmax when
    ``temperature`` is 0. After a completion's end token, the rest is padding.

    The same model, prompts, temperature and seeded ``generator`` (on the model's device) give the same
    completions. The model is put in eval mode for sampling and restored afterwards. ``model`` is a
    :class:`CharLM` (or any model with its ``new_cache`` and ``forward(ids, cache)``): each new token costs
    one position's forward, not the whole sequence's (a key/value cache; the logits match the full
    recomputation to float rounding). Notebook 12's cpu run took 77 s with it against 240 s without, same
    samples, on a 2-core CPU (``benchmarks/time_notebooks.py``, results ``notebooks_cpu_*_zen3*.md``).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0 (0 = greedy), got {temperature}")
    was_training = model.training
    model.eval()
    # The key/value cache: each step runs the model on the newest token only, its attention reading the
    # earlier positions' keys and values from the cache (the prompt's are computed once, in the first call).
    cache = model.new_cache()
    logits = model(prompts, cache)[:, -1].float()
    finished = torch.zeros(prompts.shape[0], dtype=torch.bool, device=prompts.device)
    tokens = []
    for step in range(max_new_tokens):
        if temperature == 0:
            token = logits.argmax(dim=-1)
        else:
            probs = F.softmax(logits / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        finished |= token == eos_id
        tokens.append(token)
        if step + 1 < max_new_tokens:
            logits = model(token[:, None], cache)[:, -1].float()
    model.train(was_training)
    return torch.stack(tokens, dim=1) if tokens else prompts.new_empty(prompts.shape[0], 0)
