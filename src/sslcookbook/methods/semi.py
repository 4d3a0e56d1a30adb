"""Semi-supervised methods: a classifier trained on a few labelled images and many unlabelled ones.

Each method is an ``nn.Module`` with ``training_step(labelled, labels, unlabelled_views) -> dict``
(``unlabelled_views`` = ``[weak, strong]``, two views of the same unlabelled images), ``after_step``
(EMA updates) and ``predict`` (the logits of the network that is evaluated). ``semi_train.train_semi``
runs them; the pipelines of several trainings (Noisy Student, SimCLRv2) are in ``semi_train``.

- :class:`SupervisedOnly`: cross-entropy on the labelled batch, the baseline.
- :class:`PseudoLabel` (Lee 2013): the network's own argmax on the weak view as the target.
- :class:`MeanTeacher` (Tarvainen & Valpola 2017): an EMA teacher's softmax (``ema.EMATarget``) as the
  target of the student on the strong view; the teacher is what is evaluated.
- :class:`FixMatch` (Sohn et al. 2020): the weak view's confident argmax as the strong view's target.
- :class:`Distillation` (Noisy Student's and SimCLRv2's student): a frozen teacher's soft labels.

**BatchNorm.** Every method runs the labelled batch and all the unlabelled views through the network in
*one* forward pass (concatenated), as FixMatch's reference code does (kekmodel #20): BatchNorm then
normalises with the statistics of the whole mixed batch, and its running averages, used at test time,
describe that mixture. Separate passes would normalise the labelled batch (with 1 label per class, a
batch drawn from 10 images) with its own, very different statistics and let the last pass of each step
decide the running averages. Teachers (the EMA teacher, a frozen teacher) run a pass of their own.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..ema import EMATarget
from ..losses.semi import (
    confidence_mask,
    fixmatch_loss,
    mean_teacher_consistency,
    pseudo_label_loss,
    sigmoid_rampup,
    soft_distillation_loss,
)
from .base import check_fraction, feature_dim


class Classifier(nn.Module):
    """backbone → dropout → linear layer: the network every semi-supervised method trains."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.0):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        check_fraction(dropout=dropout)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim(backbone), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(x).flatten(1)))


def _split_forward(model: nn.Module, *batches: torch.Tensor) -> list[torch.Tensor]:
    """One forward pass over the concatenated batches (one set of BatchNorm statistics), split back."""
    logits = model(torch.cat(batches))
    return list(logits.split([b.shape[0] for b in batches]))


class SemiSupervisedMethod(nn.Module):
    """The interface: ``training_step``, ``after_step``, ``predict``; ``model`` is the trained classifier.

    ``uses_unlabelled = False`` tells the loop it need not make unlabelled views (the baseline).
    ``training_step`` returns ``loss``, ``supervised`` and ``unlabelled`` (the two terms) and, for the
    methods with pseudo-labels, ``mask`` (1 where a pseudo-label is used) and ``pseudo_labels``: the loop
    scores them against the true labels it holds, which the method never sees.
    """

    uses_unlabelled = True
    #: Fraction of training done before this step; the loop sets it before each ``training_step``.
    progress: float = 0.0

    def __init__(self, model: Classifier):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module classifier (methods.semi.Classifier), got {model!r}")
        self.model = model

    def training_step(self, labelled, labels, unlabelled_views) -> dict:
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """After each optimiser step, with the fraction of training done (EMA updates). Default: nothing."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @staticmethod
    def _views(unlabelled_views, count: int = 2) -> list[torch.Tensor]:
        if not isinstance(unlabelled_views, (list, tuple)) or len(unlabelled_views) < count:
            raise ValueError(
                f"unlabelled_views must be a list of at least {count} views [weak, strong] of one unlabelled "
                "batch (augment.strong.weak_strong_views makes them)"
            )
        return list(unlabelled_views)


class SupervisedOnly(SemiSupervisedMethod):
    """Cross-entropy on the labelled images only: what the unlabelled images must beat."""

    uses_unlabelled = False

    def training_step(self, labelled, labels, unlabelled_views=None) -> dict:
        loss = F.cross_entropy(self.model(labelled), labels)
        return {"loss": loss, "supervised": loss.detach(), "unlabelled": torch.zeros(())}


class PseudoLabel(SemiSupervisedMethod):
    r"""Lee (2013): :math:`\ell = \mathrm{CE}_\text{sup} + \alpha(t)\,\ell_\text{PL}(z_w)`, the target the
    network's own argmax on the weak view (:func:`~sslcookbook.losses.semi.pseudo_label_loss`), kept
    where its confidence reaches ``threshold`` (Lee: 0, every image), weighted by ``weight`` ×
    :func:`~sslcookbook.losses.semi.sigmoid_rampup` over the first ``rampup`` of training."""

    def __init__(self, model: Classifier, threshold: float = 0.0, weight: float = 1.0, rampup: float = 0.2):
        super().__init__(model)
        check_fraction(threshold=threshold)
        self.threshold, self.weight, self.rampup = threshold, weight, rampup

    def training_step(self, labelled, labels, unlabelled_views) -> dict:
        weak = self._views(unlabelled_views, 1)[0]
        logits_l, logits_u = _split_forward(self.model, labelled, weak)
        supervised = F.cross_entropy(logits_l, labels)
        unlabelled = pseudo_label_loss(logits_u, self.threshold)
        ramp = sigmoid_rampup(self.progress, self.rampup) if self.rampup > 0 else 1.0
        mask, pseudo = confidence_mask(logits_u, self.threshold)
        return {
            "loss": supervised + self.weight * ramp * unlabelled,
            "supervised": supervised.detach(),
            "unlabelled": unlabelled.detach(),
            "mask": mask,
            "pseudo_labels": pseudo,
        }


class FixMatch(SemiSupervisedMethod):
    r"""Sohn et al. (2020): :math:`\ell = \mathrm{CE}_\text{sup} + \lambda_u\,\ell_u` with
    :math:`\ell_u` = :func:`~sslcookbook.losses.semi.fixmatch_loss` (weak view's confident argmax taught
    on the strong view, τ = ``threshold``, 0.95 in the paper; λ_u = ``lambda_u``, 1)."""

    def __init__(self, model: Classifier, threshold: float = 0.95, lambda_u: float = 1.0):
        super().__init__(model)
        check_fraction(threshold=threshold)
        self.threshold, self.lambda_u = threshold, lambda_u

    def training_step(self, labelled, labels, unlabelled_views) -> dict:
        weak, strong = self._views(unlabelled_views)[:2]
        logits_l, logits_w, logits_s = _split_forward(self.model, labelled, weak, strong)
        supervised = F.cross_entropy(logits_l, labels)
        unlabelled = fixmatch_loss(logits_w, logits_s, self.threshold)
        mask, pseudo = confidence_mask(logits_w, self.threshold)
        return {
            "loss": supervised + self.lambda_u * unlabelled,
            "supervised": supervised.detach(),
            "unlabelled": unlabelled.detach(),
            "mask": mask,
            "pseudo_labels": pseudo,
        }


class MeanTeacher(SemiSupervisedMethod):
    r"""Tarvainen & Valpola (2017): :math:`\ell = \mathrm{CE}_\text{sup} + w\,r(t)\,J`, with J the
    squared distance between the student's softmax on the strong view and the EMA teacher's on the weak
    view (:func:`~sslcookbook.losses.semi.mean_teacher_consistency`), ``weight`` w (100 on CIFAR-10 in
    the paper's code) ramped by r(t) = exp(−5(1−t)²) over the first ``rampup`` of training.

    The teacher is :class:`~sslcookbook.ema.EMATarget` of the classifier at a constant ``momentum``
    (0.97–0.999 in the paper, which also starts with min(1 − 1/(t+1), α); here constant from step 1). It
    runs in training mode, with its own batch statistics (the EMA copies parameters, not BatchNorm
    buffers), and it is the network ``predict`` evaluates, as in the paper.
    """

    def __init__(self, model: Classifier, momentum: float = 0.99, weight: float = 10.0, rampup: float = 0.3):
        super().__init__(model)
        self.teacher = EMATarget({"model": model}, base_momentum=momentum, final_momentum=momentum)
        self.weight, self.rampup = weight, rampup

    def training_step(self, labelled, labels, unlabelled_views) -> dict:
        weak, strong = self._views(unlabelled_views)[:2]
        logits_l, logits_s = _split_forward(self.model, labelled, strong)
        with torch.no_grad():
            logits_t = self.teacher.model(weak)
        supervised = F.cross_entropy(logits_l, labels)
        unlabelled = mean_teacher_consistency(logits_s, logits_t)
        ramp = sigmoid_rampup(self.progress, self.rampup) if self.rampup > 0 else 1.0
        mask, pseudo = confidence_mask(logits_t, 0.0)
        return {
            "loss": supervised + self.weight * ramp * unlabelled,
            "supervised": supervised.detach(),
            "unlabelled": unlabelled.detach(),
            "mask": mask,
            "pseudo_labels": pseudo,
        }

    def after_step(self, progress: float) -> None:
        self.teacher.update(progress)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher.model(x)


class Distillation(SemiSupervisedMethod):
    r"""A student taught by a frozen teacher's soft labels on unlabelled images:
    :math:`\ell = s\,\mathrm{CE}_\text{sup} + \ell_\text{KD}`, :math:`\ell_\text{KD}` =
    :func:`~sslcookbook.losses.semi.soft_distillation_loss` (−Σ p_T log p_S at ``temperature``).

    The teacher (in eval mode, not noised) labels the weak view. ``noised=True`` (Noisy Student, Xie et
    al. 2020) trains the student on the strong view, with the classifier's dropout; ``noised=False``
    (SimCLRv2's distillation, Chen et al. 2020) on the same weak view. ``supervised_weight`` s: 1 for
    Noisy Student (labelled and pseudo-labelled images together), 0 for SimCLRv2 (distillation only).
    The teacher is a frozen copy kept out of the state dict: to resume, build the method with the same
    teacher again.
    """

    def __init__(
        self,
        model: Classifier,
        teacher: nn.Module,
        temperature: float = 1.0,
        noised: bool = True,
        supervised_weight: float = 1.0,
    ):
        super().__init__(model)
        self.teacher = (copy.deepcopy(teacher).eval().requires_grad_(False),)  # a tuple: not a parameter
        self.temperature, self.noised, self.supervised_weight = temperature, noised, supervised_weight

    def _apply(self, fn, recurse=True):  # .to(device) moves the teacher kept outside the module tree
        self.teacher[0]._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def training_step(self, labelled, labels, unlabelled_views) -> dict:
        weak, strong = self._views(unlabelled_views)[:2]
        logits_l, logits_u = _split_forward(self.model, labelled, strong if self.noised else weak)
        with torch.no_grad():
            logits_t = self.teacher[0].eval()(weak)
        supervised = F.cross_entropy(logits_l, labels)
        unlabelled = soft_distillation_loss(logits_u, logits_t, self.temperature)
        mask, pseudo = confidence_mask(logits_t, 0.0)
        return {
            "loss": self.supervised_weight * supervised + unlabelled,
            "supervised": supervised.detach(),
            "unlabelled": unlabelled.detach(),
            "mask": mask,
            "pseudo_labels": pseudo,
        }


__all__ = [
    "Classifier",
    "Distillation",
    "FixMatch",
    "MeanTeacher",
    "PseudoLabel",
    "SemiSupervisedMethod",
    "SupervisedOnly",
]
