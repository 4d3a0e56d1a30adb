r"""Losses that fine-tune a language model from its own samples: preference optimisation and RL with
verifiable rewards (notebook 12).

- :func:`dpo_loss` (Rafailov et al. 2023): a logistic loss on the log-ratio margin of a chosen over a
  rejected completion, measured against a frozen reference model; no reward model, no sampling in the loss.
- GRPO (Shao et al. 2024, DeepSeekMath), in its three pieces: :func:`group_relative_advantages` (each
  sample's reward standardised within its problem's group of k samples, no value network),
  :func:`clipped_surrogate` (PPO's clipped importance-weighted objective, Schulman et al. 2017) and
  :func:`kl_k3` (the unbiased, always non-negative estimate of KL(π_θ ‖ π_ref) GRPO adds to the loss);
  :func:`grpo_loss` puts them together.

Log-probabilities are of whole completions (B) for DPO and per token (B×T, with a mask) for GRPO.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_same(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor of log-probabilities, got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes differ: {shapes}; pass one log-probability per completion (or token) each")


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
             beta: float = 0.1) -> torch.Tensor:
    r"""Direct Preference Optimization (Rafailov et al. 2023, "Direct Preference Optimization: Your
    Language Model is Secretly a Reward Model", arXiv:2305.18290, eq. 7):

    .. math::
        \mathcal{L} = -\frac1N \sum_i \log\sigma\Big(\beta\Big[\log\frac{\pi_\theta(y_w^i\mid x^i)}
        {\pi_\mathrm{ref}(y_w^i\mid x^i)} - \log\frac{\pi_\theta(y_l^i\mid x^i)}
        {\pi_\mathrm{ref}(y_l^i\mid x^i)}\Big]\Big)

    Args: the log-probabilities (shape N, one per pair) of the chosen ``y_w`` and rejected ``y_l``
    completions under the policy being trained and under the frozen reference; ``beta`` > 0 sets how far
    the policy may move from the reference (the inverse strength of the KL constraint it solves).
    """
    _check_same(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                reference_chosen_logps=reference_chosen_logps,
                reference_rejected_logps=reference_rejected_logps)
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen_log_ratio = policy_chosen_logps - reference_chosen_logps
    rejected_log_ratio = policy_rejected_logps - reference_rejected_logps
    margin = chosen_log_ratio - rejected_log_ratio
    return -F.logsigmoid(beta * margin).mean()


def group_relative_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    r"""GRPO's advantages with outcome rewards (Shao et al. 2024, arXiv:2402.03300, §4.1.2):
    :math:`\hat A_{i} = (r_i - \mathrm{mean}(r)) / (\mathrm{std}(r) + \epsilon)` within each group.

    ``rewards`` is P×k: k sampled completions for each of P problems. The std is the population one
    (divide by k). A group whose rewards are all equal (all right or all wrong) gets zero advantages:
    it teaches nothing.
    """
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(
            f"rewards must be P×k with k ≥ 2 samples per problem, got shape {tuple(rewards.shape)}")
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True, unbiased=False)
    return (rewards - mean) / (std + eps)


def clipped_surrogate(log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
                      clip_eps: float = 0.2) -> torch.Tensor:
    r"""PPO's clipped objective per token (Schulman et al. 2017, arXiv:1707.06347, eq. 7), to maximise:
    :math:`\min(\rho_t \hat A, \mathrm{clip}(\rho_t, 1-\epsilon, 1+\epsilon)\hat A)` with
    :math:`\rho_t = \pi_\theta(o_t \mid \cdot) / \pi_\mathrm{old}(o_t \mid \cdot)`.

    ``log_probs`` and ``old_log_probs`` are B×T; ``advantages`` is B (one per completion) or B×T.
    """
    _check_same(log_probs=log_probs, old_log_probs=old_log_probs)
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(log_probs - old_log_probs)
    return torch.minimum(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)


def kl_k3(log_probs: torch.Tensor, reference_log_probs: torch.Tensor) -> torch.Tensor:
    r"""GRPO's per-token estimate of KL(π_θ ‖ π_ref) (Shao et al. 2024, eq. 4; Schulman's "k3"):
    :math:`\frac{\pi_\mathrm{ref}}{\pi_\theta} - \log\frac{\pi_\mathrm{ref}}{\pi_\theta} - 1 \ge 0`,
    unbiased when the tokens are sampled from π_θ."""
    _check_same(log_probs=log_probs, reference_log_probs=reference_log_probs)
    log_ratio = reference_log_probs - log_probs
    return torch.exp(log_ratio) - log_ratio - 1


def grpo_loss(log_probs: torch.Tensor, old_log_probs: torch.Tensor, reference_log_probs: torch.Tensor,
              advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float = 0.2,
              beta: float = 0.04) -> torch.Tensor:
    r"""The GRPO objective, negated to be minimised (Shao et al. 2024, eq. 3):

    .. math::
        \mathcal{L} = -\frac1B\sum_i \frac1{|o_i|}\sum_{t} \Big[\min\big(\rho_{i,t}\hat A_i,
        \mathrm{clip}(\rho_{i,t}, 1-\epsilon, 1+\epsilon)\hat A_i\big)
        - \beta\, \mathbb{D}_\mathrm{KL}^{k3}[\pi_\theta \| \pi_\mathrm{ref}]_{i,t}\Big]

    ``log_probs`` (with gradient), ``old_log_probs`` (of the policy that sampled) and
    ``reference_log_probs`` are B×T; ``advantages`` B (:func:`group_relative_advantages`, flattened);
    ``mask`` B×T is True on each completion's tokens (:func:`sslcookbook.models.char_lm.completion_mask`).
    """
    if mask.shape != log_probs.shape:
        raise ValueError(
            f"mask has shape {tuple(mask.shape)}, log_probs {tuple(log_probs.shape)}: they must match")
    if advantages.shape != log_probs.shape[:1]:
        raise ValueError(
            f"advantages must have one value per completion (shape {tuple(log_probs.shape[:1])}), got "
            f"{tuple(advantages.shape)}; flatten group_relative_advantages' P×k output")
    per_token = clipped_surrogate(log_probs, old_log_probs, advantages, clip_eps) - beta * kl_k3(
        log_probs, reference_log_probs)
    mask = mask.to(per_token.dtype)
    lengths = mask.sum(dim=1).clamp_min(1)
    return -((per_token * mask).sum(dim=1) / lengths).mean()
