r"""DINO's loss: cross-entropy between a centred, sharpened teacher and the student, and the centre update.

DINO (Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers", arXiv:2104.14294)
is self-distillation without labels: the student is trained to match a momentum teacher (no gradient)
over K prototype scores. Nothing in the loss pushes different images apart; what keeps the teacher from
collapsing is centring (against one dominant prototype) together with sharpening (against uniform).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..distributed import all_reduce_mean
from ..kernels import dino as fused
from ..kernels import resolve_backend
from ._checks import check_temperature, check_tensor, inspects_values


def dino_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
    backend: str = "auto",
) -> torch.Tensor:
    r"""DINO's self-distillation loss (Caron et al., 2021, arXiv:2104.14294).

    Each image gives S crops; the student sees all of them, the teacher only the first T (global) ones.
    The teacher's output is centred (c, a running mean of its logits) and sharpened (τ_t < τ_s); the
    student's softmax is pulled towards it on every pair of different crops:

    .. math::  P_{t,b} = \mathrm{softmax}\Big(\frac{y_{t,b} - c}{\tau_t}\Big)\ \text{(no gradient)},
               \qquad \log Q_{s,b} = \mathrm{log\_softmax}\Big(\frac{x_{s,b}}{\tau_s}\Big)

    .. math::  \mathcal{L} = \frac{1}{(TS - T)\,B}\sum_{t<T}\ \sum_{s<S,\ s\ne t}\ \sum_{b<B}
               -\langle P_{t,b}, \log Q_{s,b}\rangle

    Centring alone drives P towards uniform and sharpening alone towards one-hot; together they
    balance (the paper's section 5.3). On CUDA tensors this runs the fused Triton kernel
    (:mod:`sslcookbook.kernels.dino`, which never materialises the S·B·K log-probabilities), otherwise
    :func:`dino_loss_reference`.

    Args:
        student: (S, B, K) student logits of all S crops; its first T crops are the teacher's crops.
        teacher: (T, B, K) teacher logits of the T global crops (no gradient flows into it).
        center: (K,) the running centre, see :func:`update_center` (no gradient flows into it).
        student_temperature: τ_s > 0 (0.1 in the paper).
        teacher_temperature: τ_t > 0 (0.04, warmed up to 0.07 in longer runs).
        backend: ``"auto"`` (Triton for CUDA tensors when it imports, else PyTorch), ``"triton"`` or
            ``"torch"``.
    Returns:
        the scalar mean over crop pairs and images, fp32 (fp64 for fp64 inputs on the torch backend),
        differentiable with respect to ``student`` only.

    Raises ValueError for inconsistent shapes, T > S, S < 2, temperatures ≤ 0 and, after the fact, for
    NaN or inf in the inputs that make the loss non-finite, naming the tensor (one host synchronisation
    on the scalar loss; skipped under torch.compile). A +inf center entry or a −inf teacher logit only
    gives that prototype zero target probability and is accepted.
    """
    _check_crops(student, teacher, center)
    student_temperature = check_temperature(student_temperature, "student_temperature")
    teacher_temperature = check_temperature(teacher_temperature, "teacher_temperature")
    if resolve_backend(backend, (student, teacher, center), fused) == "triton":
        loss = fused.dino_loss(student, teacher, center, student_temperature, teacher_temperature)
    else:
        loss = dino_loss_reference(student, teacher, center, student_temperature, teacher_temperature)
    _check_finite(loss, student, teacher, center)
    return loss


def dino_loss_reference(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
) -> torch.Tensor:
    r""":func:`dino_loss` in plain PyTorch on checked inputs (materialises the S·B·K log-probabilities).

    Computed in fp32 (fp64 for fp64 inputs). All T·S cross-entropies come from one contraction over
    (b, k); the self-pairs s = t are masked out before the mean.
    """
    n_crops, batch, _ = student.shape
    n_teacher = teacher.shape[0]
    dtype = torch.promote_types(torch.promote_types(student.dtype, teacher.dtype), torch.float32)
    # Under autocast the contraction below would run in 16-bit; the loss is meant to be fp32.
    with torch.autocast(student.device.type, enabled=False):
        log_q = F.log_softmax(student.to(dtype) / student_temperature, dim=-1)
        with torch.no_grad():
            p = F.softmax((teacher.to(dtype) - center.to(dtype)) / teacher_temperature, dim=-1)
        # cross_entropy[t, s] = -(1/B) Σ_b Σ_k p[t, b, k] log q[s, b, k]
        cross_entropy = -torch.einsum("tbk,sbk->ts", p, log_q) / batch
    device = student.device
    not_self = (
        torch.arange(n_teacher, device=device)[:, None] != torch.arange(n_crops, device=device)[None, :]
    )
    # torch.where, not boolean indexing: no data-dependent shape, so torch.compile sees one static graph.
    return torch.where(not_self, cross_entropy, 0.0).sum() / (n_teacher * n_crops - n_teacher)


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_logits: torch.Tensor, momentum: float = 0.9) -> torch.Tensor:
    r"""DINO's centre update, an exponential moving average of the teacher's mean logit.

    .. math::  c \leftarrow m\,c + (1 - m)\,\frac{1}{|\mathcal{B}|}\sum_{i \in \mathcal{B}} y_i

    where the mean runs over every row of ``teacher_logits`` (all leading dimensions: crops and images)
    and, under ``torch.distributed``, over every rank (an all-reduce, as in the paper), so all ranks
    keep the same centre. Every rank must call it (it is a collective). With equal per-rank batches
    the result equals the single-process update on the whole batch.

    Args:
        center: (K,) current centre.
        teacher_logits: (..., K) teacher logits of this step (e.g. T×B×K).
        momentum: m in [0, 1] (0.9 in the paper).
    Returns:
        the new centre, a (K,) tensor in ``center``'s dtype; ``center`` itself is not modified.
    """
    if not isinstance(center, torch.Tensor) or center.dim() != 1:
        raise ValueError(f"center must be a 1-D tensor (K,), got {getattr(center, 'shape', type(center))}")
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.dim() < 1:
        raise ValueError("teacher_logits must be a tensor (..., K) of teacher logits")
    if teacher_logits.shape[-1] != center.shape[0]:
        raise ValueError(
            f"teacher_logits has {teacher_logits.shape[-1]} prototypes in its last dimension but center "
            f"has {center.shape[0]}; they must agree"
        )
    if teacher_logits.numel() == 0:
        raise ValueError("teacher_logits is empty: the centre needs at least one teacher output")
    if not 0.0 <= float(momentum) <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    dtype = torch.promote_types(torch.promote_types(center.dtype, teacher_logits.dtype), torch.float32)
    batch_mean = teacher_logits.detach().reshape(-1, center.shape[0]).to(dtype).mean(dim=0)
    batch_mean = all_reduce_mean(batch_mean)
    if inspects_values(batch_mean) and not torch.isfinite(batch_mean).all():
        raise ValueError(
            "teacher_logits contain NaN or inf: training diverged — lower the learning rate or clip gradients"
        )
    return torch.lerp(center.to(dtype), batch_mean, 1.0 - float(momentum)).to(center.dtype)


def _check_crops(student, teacher, center) -> None:
    """student (S, B, K), teacher (T, B, K) with 1 ≤ T ≤ S and S ≥ 2, center (K,), all on one device."""
    crops_hint = "; stack the crops with torch.stack(crops) or reshape(S, B, K)"
    check_tensor("student", student, 3, "(S crops, B images, K prototypes)", crops_hint)
    check_tensor("teacher", teacher, 3, "(T global crops, B images, K prototypes)", crops_hint)
    check_tensor("center", center, 1, "(K,)")
    n_crops, batch, k = student.shape
    n_teacher = teacher.shape[0]
    if batch < 1 or k < 1:
        raise ValueError(
            f"student needs at least one image and one prototype, got shape {tuple(student.shape)}"
        )
    if teacher.shape[1:] != student.shape[1:]:
        raise ValueError(
            f"teacher {tuple(teacher.shape)} and student {tuple(student.shape)} must agree on (B, K): the "
            "same images, the same prototypes"
        )
    if center.shape[0] != k:
        raise ValueError(f"center must have shape ({k},), one value per prototype, got {tuple(center.shape)}")
    if n_teacher < 1:
        raise ValueError("teacher has no crops (T = 0); pass the teacher logits of at least one global crop")
    if n_teacher > n_crops:
        raise ValueError(
            f"teacher has T={n_teacher} crops but student only S={n_crops}: the student must see every "
            "teacher crop, first, followed by its local crops"
        )
    if n_crops < 2:
        raise ValueError(
            f"student has S={n_crops} crop; DINO needs S ≥ 2 (with s = t skipped there is no pair otherwise)"
        )
    devices = {student.device, teacher.device, center.device}
    if len(devices) > 1:
        raise ValueError(
            f"student, teacher and center are on different devices ({student.device}, {teacher.device}, "
            f"{center.device}); move them to one"
        )


def _check_finite(loss: torch.Tensor, student, teacher, center) -> None:
    """Raise a clear error when the loss is not finite (on the CPU: see ``inspects_values``); the inputs
    are only scanned, to name the culprit, once something is wrong."""
    if not inspects_values(loss) or bool(torch.isfinite(loss.detach())):
        return
    for name, t in (("student", student), ("teacher", teacher), ("center", center)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{name} contains NaN or inf: training diverged — lower the learning rate, clip gradients, "
                "or check the model's outputs"
            )
    raise ValueError(
        "the DINO loss overflowed although the inputs are finite: the logits divided by the temperatures "
        "exceed the float range; lower the logits' scale or raise the temperatures"
    )
