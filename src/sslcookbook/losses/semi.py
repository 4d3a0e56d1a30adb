r"""Semi-supervised losses: a network's own predictions on unlabelled images become its targets.

- :func:`fixmatch_loss` (Sohn et al. 2020) and :func:`confidence_mask`: hard pseudo-labels from a weak
  view, kept where the prediction is confident, taught on a strong view.
- :func:`pseudo_label_loss` (Lee 2013): the same, from the very view that is trained on.
- :func:`mean_teacher_consistency` (Tarvainen & Valpola 2017) and :func:`sigmoid_rampup`: the softmax of
  an EMA teacher as the target, with a weight ramped up from 0.
- :func:`soft_distillation_loss` (Noisy Student, Xie et al. 2020; SimCLRv2, Chen et al. 2020): the
  teacher's whole distribution as the target, −Σ p_T log p_S.

Targets never receive gradient: each loss detaches them itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import check_temperature

Tensor = torch.Tensor


def _check_logits(**tensors: Tensor) -> None:
    shapes = {}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of logits N×C, got {type(t).__name__}")
        if t.dim() != 2 or t.shape[0] < 1 or t.shape[1] < 2:
            raise ValueError(
                f"{name} must be logits N×C with N >= 1 and C >= 2 classes, got {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating point logits, got {t.dtype}; call .float() on it")
        shapes[name] = tuple(t.shape)
    if len(set(shapes.values())) > 1:
        raise ValueError(f"the logits must have one shape (the same images and classes), got {shapes}")


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a confidence in [0, 1] (FixMatch: 0.95), got {threshold!r}")
    return float(threshold)


def confidence_mask(logits: Tensor, threshold: float = 0.95) -> tuple[Tensor, Tensor]:
    r"""``(mask, pseudo_labels)`` of detached logits: :math:`\hat y = \arg\max p`, mask
    :math:`= \mathbb 1[\max p \ge \tau]` as a float tensor (its mean is the *mask rate*)."""
    _check_logits(logits=logits)
    threshold = _check_threshold(threshold)
    confidence, pseudo_labels = torch.softmax(logits.detach(), dim=1).max(dim=1)
    return (confidence >= threshold).to(logits.dtype), pseudo_labels


def fixmatch_loss(logits_weak: Tensor, logits_strong: Tensor, threshold: float = 0.95) -> Tensor:
    r"""FixMatch's unlabelled loss (Sohn et al., *FixMatch*, NeurIPS 2020, eq. 4):

    .. math::  \ell_u = \frac{1}{\mu B}\sum_{b=1}^{\mu B} \mathbb 1[\max p_w(b) \ge \tau]\;
               \mathrm{CE}\big(\arg\max p_w(b),\; \mathrm{softmax}(z_s(b))\big)

    with :math:`p_w = \mathrm{softmax}(z_w)` of the weak view, detached (no gradient through the target),
    and :math:`z_s` the logits of the strong view of the same images. The mean is over the whole
    unlabelled batch, masked images counting as 0, so the loss shrinks when few images pass τ.
    The supervised term CE on the labelled batch is added by the method (weight λ_u = 1 on this one).
    """
    _check_logits(logits_weak=logits_weak, logits_strong=logits_strong)
    mask, pseudo_labels = confidence_mask(logits_weak, threshold)
    return (F.cross_entropy(logits_strong, pseudo_labels, reduction="none") * mask).mean()


def pseudo_label_loss(logits: Tensor, threshold: float = 0.0) -> Tensor:
    r"""Pseudo-labelling (Lee, *Pseudo-Label*, ICML 2013 workshop): the class the network predicts is the
    target of the same prediction,

    .. math::  \ell_u = \frac{1}{N}\sum_{n} \mathbb 1[\max p(n) \ge \tau]\;
               \mathrm{CE}\big(\arg\max p(n),\; \mathrm{softmax}(z(n))\big),

    the target detached. Lee uses every image (τ = 0); a threshold (as in FixMatch) keeps only the
    confident ones. It is :func:`fixmatch_loss` with the weak and the trained view the same.
    """
    return fixmatch_loss(logits, logits, threshold)


def sigmoid_rampup(progress: float, length: float = 1.0) -> float:
    r"""Mean Teacher's ramp-up of the consistency weight (Laine & Aila 2017; Tarvainen & Valpola 2017):
    :math:`w(t) = \exp(-5(1 - t)^2)` with :math:`t = \min(1, \text{progress} / \text{length})`, from
    e^{-5} ≈ 0.007 at the start to 1 once ``length`` of training is done."""
    if not progress >= 0 or not length > 0:
        raise ValueError(f"progress must be >= 0 and length > 0, got progress {progress}, length {length}")
    t = min(1.0, float(progress) / float(length))
    return math.exp(-5.0 * (1.0 - t) ** 2)


def mean_teacher_consistency(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    r"""Mean Teacher's consistency cost (Tarvainen & Valpola, *Mean teachers are better role models*,
    NeurIPS 2017): the squared distance between the student's and the (detached) EMA teacher's softmax,

    .. math::  J = \frac{1}{N C}\sum_{n=1}^{N} \| \sigma(z_S(n)) - \sigma(z_T(n)) \|^2

    with σ the softmax, averaged over images and classes, as the reference code's ``softmax_mse_loss``
    (summed, / C, / N).
    The method multiplies it by its weight (100 on CIFAR-10) times :func:`sigmoid_rampup`.
    """
    _check_logits(student_logits=student_logits, teacher_logits=teacher_logits)
    return F.mse_loss(torch.softmax(student_logits, dim=1), torch.softmax(teacher_logits.detach(), dim=1))


def soft_distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0
) -> Tensor:
    r"""Distillation with the teacher's soft labels (Hinton et al. 2015; Noisy Student, Xie et al. 2020;
    SimCLRv2's distillation, Chen et al. 2020, eq. 2):

    .. math::  \ell = -\frac{1}{N}\sum_{n}\sum_{c} p_T(c \mid x_n; \tau)\,\log p_S(c \mid x_n; \tau),
               \qquad p(c \mid x; \tau) = \mathrm{softmax}(z / \tau)_c,

    the teacher's probabilities detached. Its gradient in the student's logits is (p_S − p_T)/(τN).
    """
    _check_logits(student_logits=student_logits, teacher_logits=teacher_logits)
    temperature = check_temperature(temperature)
    target = torch.softmax(teacher_logits.detach() / temperature, dim=1)
    return -(target * torch.log_softmax(student_logits / temperature, dim=1)).sum(dim=1).mean()


__all__ = [
    "confidence_mask",
    "fixmatch_loss",
    "mean_teacher_consistency",
    "pseudo_label_loss",
    "sigmoid_rampup",
    "soft_distillation_loss",
]
