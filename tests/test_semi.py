"""Semi-supervised vision: the labelled split, strong augmentation, the losses (fp64, against independent
formulas, gradients included), the methods and the loop (bit-exact resume keeps the labelled set)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslcookbook import data
from sslcookbook.augment.strong import RAND_AUGMENT_OPS, cutout, rand_augment, weak_strong_views
from sslcookbook.data.semi import check_same_split, labelled_split, split_from_state
from sslcookbook.losses.semi import (
    confidence_mask,
    fixmatch_loss,
    mean_teacher_consistency,
    pseudo_label_loss,
    sigmoid_rampup,
    soft_distillation_loss,
)
from sslcookbook.methods.semi import (
    Classifier,
    Distillation,
    FixMatch,
    MeanTeacher,
    PseudoLabel,
    SupervisedOnly,
)
from sslcookbook.models import SmallCNN
from sslcookbook.semi_recipes import semi_setting
from sslcookbook.semi_train import SemiConfig, accuracy, fixmatch_lr, noisy_student, simclrv2, train_semi
from sslcookbook.train import load_checkpoint


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train").subset(300, seed=0)


# ------------------------------------------------------------------ split


def test_split_has_k_per_class_and_unlabelled_includes_labelled(digits):
    split = labelled_split(digits, 3, seed=5)
    assert torch.equal(split.labelled.class_counts(), torch.full((10,), 3))
    assert split.unlabelled is digits  # the labelled images are in the unlabelled set
    assert torch.equal(digits.images[split.indices], split.labelled.images)
    again = labelled_split(digits, 3, seed=5)
    assert torch.equal(again.indices, split.indices)
    assert not torch.equal(labelled_split(digits, 3, seed=6).indices, split.indices)
    assert len(labelled_split(digits, None).labelled) == len(digits)


def test_split_errors(digits):
    smallest = int(digits.class_counts().min())
    with pytest.raises(ValueError, match=f"labels_per_class <= {smallest}"):
        labelled_split(digits, smallest + 1)
    with pytest.raises(ValueError, match=">= 1"):
        labelled_split(digits, 0)
    with pytest.raises(TypeError, match="ImageDataset"):
        labelled_split(digits.images, 1)
    with pytest.raises(TypeError, match="seed"):
        labelled_split(digits, 1, seed=None)
    with pytest.raises(ValueError, match="not this split"):
        check_same_split(labelled_split(digits, 2, seed=1), labelled_split(digits, 2, seed=0).state_dict())


# ------------------------------------------------------------------ strong augmentation


def test_strong_views_deterministic_shapes_range(digits):
    views = weak_strong_views(digits.image_shape)
    a = views(digits.images[:64], generator=torch.Generator().manual_seed(0))
    b = views(digits.images[:64], generator=torch.Generator().manual_seed(0))
    c = views(digits.images[:64], generator=torch.Generator().manual_seed(1))
    assert len(a) == 2 and all(v.shape == (64, 1, 8, 8) and v.dtype == torch.float32 for v in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[1], c[1])
    assert all(0 <= v.min() and v.max() <= 1 for v in a)
    assert (a[1] - a[0]).abs().mean() > 0.05  # the strong view is further from the image


@pytest.mark.parametrize("name", sorted(RAND_AUGMENT_OPS))
def test_every_op_in_range(name):
    x = torch.rand(6, 3, 12, 12, dtype=torch.float64)
    y = rand_augment(x, num_ops=1, ops=[name], generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype and 0 <= y.min() and y.max() <= 1
    if name != "identity":
        assert not torch.equal(x, y)


def test_cutout_fills_a_square():
    x = torch.zeros(8, 1, 8, 8)
    y = cutout(x, size=0.5, fill=0.5, generator=torch.Generator().manual_seed(0))
    filled = (y == 0.5).sum(dim=(1, 2, 3))
    assert (filled >= 4).all() and (filled <= 16).all()  # 4×4, clipped where it sticks out
    with pytest.raises(ValueError, match="size"):
        cutout(x, size=2.0)


# ------------------------------------------------------------------ losses (fp64, gradients)


def _logits(seed, n=7, c=5, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, c, generator=g, dtype=torch.float64)).requires_grad_(True)


def test_fixmatch_loss_matches_the_sum_by_hand():
    weak, strong = _logits(0), _logits(1)
    loss = fixmatch_loss(weak, strong, threshold=0.7)
    p = [[math.exp(v) for v in row] for row in weak.tolist()]
    expected = 0.0
    for b, row in enumerate(p):
        total = sum(row)
        if max(row) / total >= 0.7:
            target = row.index(max(row))
            z = strong[b].tolist()
            expected += -(z[target] - math.log(sum(math.exp(v) for v in z)))
    expected /= weak.shape[0]
    assert abs(loss.item() - expected) < 1e-12
    assert 0 < confidence_mask(weak, 0.7)[0].mean() < 1  # the example masks some, not all
    grad_w, grad_s = torch.autograd.grad(loss, (weak, strong), allow_unused=True)
    assert grad_w is None or torch.count_nonzero(grad_w) == 0  # the weak view is only a target
    mask, target = confidence_mask(weak, 0.7)
    onehot = F.one_hot(target, 5).double()
    manual = (torch.softmax(strong, 1) - onehot) * mask[:, None] / weak.shape[0]
    assert torch.allclose(grad_s, manual.detach(), atol=1e-12)


def test_pseudo_label_loss_is_self_training():
    z = _logits(2)
    loss = pseudo_label_loss(z)
    p = torch.softmax(z.detach(), 1)
    assert torch.allclose(loss, -(p.max(1).values.log()).mean(), atol=1e-12)
    (grad,) = torch.autograd.grad(loss, z)
    onehot = F.one_hot(p.argmax(1), 5).double()
    assert torch.allclose(grad, (p - onehot) / z.shape[0], atol=1e-12)
    assert pseudo_label_loss(z, threshold=1.0).item() == 0.0


def test_mean_teacher_consistency_and_rampup():
    s, t = _logits(3), _logits(4)
    loss = mean_teacher_consistency(s, t)
    ps, pt = torch.softmax(s.detach(), 1), torch.softmax(t.detach(), 1)
    assert torch.allclose(loss, ((ps - pt) ** 2).sum() / ps.numel(), atol=1e-12)
    grad_s, grad_t = torch.autograd.grad(loss, (s, t), allow_unused=True)
    assert grad_t is None
    # d/ds of mean (p - q)²: softmax Jacobian (diag(p) − ppᵀ) times 2(p − q)/(NC)
    g = 2 * (ps - pt) / ps.numel()
    manual = ps * g - ps * (ps * g).sum(1, keepdim=True)
    assert torch.allclose(grad_s, manual, atol=1e-12)
    assert sigmoid_rampup(0.0) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(0.15, 0.3) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(0.5, 0.3) == 1.0


@pytest.mark.parametrize("temperature", [1.0, 0.5, 4.0])
def test_soft_distillation(temperature):
    s, t = _logits(5), _logits(6)
    loss = soft_distillation_loss(s, t, temperature)
    pt = torch.softmax(t.detach() / temperature, 1)
    log_ps = s.detach() / temperature - torch.logsumexp(s.detach() / temperature, 1, keepdim=True)
    assert torch.allclose(loss, -(pt * log_ps).sum(1).mean(), atol=1e-12)
    (grad,) = torch.autograd.grad(loss, s)
    assert torch.allclose(grad, (log_ps.exp() - pt) / (temperature * s.shape[0]), atol=1e-12)


def test_loss_errors():
    with pytest.raises(ValueError, match="threshold"):
        fixmatch_loss(torch.zeros(2, 3), torch.zeros(2, 3), threshold=1.5)
    with pytest.raises(ValueError, match="one shape"):
        fixmatch_loss(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="N×C"):
        soft_distillation_loss(torch.zeros(3), torch.zeros(3))


# ------------------------------------------------------------------ methods and the loop


def _model(seed=0):
    torch.manual_seed(seed)
    return Classifier(SmallCNN(1, 8), 10, dropout=0.1)


CONFIG = SemiConfig(steps=6, batch_size=8, mu=2, log_every=1, checkpoint_every=2)


@pytest.mark.parametrize(
    "kind, channels_last", [("fixmatch", False), ("mean_teacher", False), ("fixmatch", True)]
)
def test_resume_is_bit_exact_and_keeps_the_split(digits, tmp_path, kind, channels_last):
    CONFIG = globals()["CONFIG"].replace(channels_last=channels_last)
    split = labelled_split(digits, 2, seed=3)
    views = weak_strong_views(digits.image_shape)
    build = {
        "fixmatch": lambda: FixMatch(_model(), threshold=0.5),
        "mean_teacher": lambda: MeanTeacher(_model()),
    }[kind]
    straight = build()
    train_semi(straight, split, views, CONFIG, progress=False)
    resumed = build()
    train_semi(resumed, split, views, CONFIG, checkpoint_dir=tmp_path, stop_after=3, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 3 and torch.equal(state["split"]["indices"], split.indices)
    rebuilt = split_from_state(digits, state["split"])
    again = build()
    history = train_semi(again, rebuilt, views, CONFIG, checkpoint_dir=tmp_path, progress=False)
    assert [row["step"] for row in history.steps] == list(range(1, 7))
    for a, b in zip(straight.state_dict().values(), again.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match="not this split"):
        train_semi(build(), labelled_split(digits, 2, seed=4), views, CONFIG, checkpoint_dir=tmp_path)


def test_methods_step_and_learn_something(digits):
    split = labelled_split(digits, 5, seed=0)
    views = weak_strong_views(digits.image_shape)
    config = SemiConfig(steps=40, batch_size=16, mu=2, optimizer="adamw", lr=3e-3, weight_decay=1e-4)
    teacher = SupervisedOnly(_model())
    train_semi(teacher, split, views, config, progress=False)
    assert accuracy(teacher, digits) > 0.3  # chance is 0.1
    for method in (PseudoLabel(_model(), threshold=0.5), Distillation(_model(1), teacher.model)):
        history = train_semi(method, split, views, config.replace(steps=4), progress=False)
        row = history.steps[-1]
        assert math.isfinite(row["loss"]) and 0 <= row["mask_rate"] <= 1


def test_noisy_student_pipeline_runs(digits):
    split = labelled_split(digits, 2, seed=0)
    config = SemiConfig(steps=3, batch_size=8, mu=1, log_every=1)
    model, scores = noisy_student(
        split, weak_strong_views(digits.image_shape), config, _model, iterations=1, eval_data=digits
    )
    assert isinstance(model, Classifier) and len(scores) == 2


def test_simclrv2_distils_the_given_fine_tuned_model_or_fine_tunes_one(digits):
    split = labelled_split(digits, 2, seed=0)
    config = SemiConfig(steps=3, batch_size=8, mu=1, log_every=1)
    views = weak_strong_views(digits.image_shape)
    backbone = SmallCNN(1, 8)
    given = _model(3)
    before = {k: v.clone() for k, v in given.state_dict().items()}
    out = simclrv2(split, views, config, backbone, _model, 10, fine_tuned=given)
    assert out["fine_tuned"] is given  # stage 2 skipped: the given model is the teacher, left untouched
    assert all(torch.equal(before[k], v) for k, v in given.state_dict().items())
    assert isinstance(out["student"], Classifier) and out["student"] is not given
    out = simclrv2(split, views, config, backbone, _model, 10)
    tuned = out["fine_tuned"]
    assert isinstance(tuned, Classifier) and tuned.backbone is not backbone  # a fine-tuned copy
    weight = "features.0.weight"
    assert not torch.equal(tuned.backbone.state_dict()[weight], backbone.state_dict()[weight])


def test_loop_errors_and_schedule(digits):
    split = labelled_split(digits, 1)
    views = weak_strong_views(digits.image_shape)
    with pytest.raises(ValueError, match="steps"):
        train_semi(FixMatch(_model()), split, views, SemiConfig(steps=0))
    with pytest.raises(TypeError, match="LabelledSplit"):
        train_semi(FixMatch(_model()), digits, views, CONFIG)
    assert fixmatch_lr(0, 100, 0.03) == 0.03
    assert fixmatch_lr(100, 100, 0.03) == pytest.approx(0.03 * math.cos(7 * math.pi / 16))


def test_semi_settings_have_every_profile():
    for profile in ("smoke", "cpu", "gpu", "full"):
        setting = semi_setting(profile)
        assert setting.config.steps >= 1 and setting.data in ("digits", "cifar10")


def test_channels_last_trains_nhwc_with_the_same_arithmetic(digits):
    """NHWC weights and views, and the loss curve of NCHW up to float rounding (no other change)."""
    split, views = labelled_split(digits, 2, seed=3), weak_strong_views(digits.image_shape)
    nchw, nhwc = FixMatch(_model(), threshold=0.5), FixMatch(_model(), threshold=0.5)
    a = train_semi(nchw, split, views, CONFIG, progress=False)
    b = train_semi(nhwc, split, views, CONFIG.replace(channels_last=True), progress=False)
    conv = next(p for p in nhwc.parameters() if p.dim() == 4 and p.shape[1] > 1)  # C = 1: both layouts
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    torch.testing.assert_close(a.column("loss"), b.column("loss"), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="channels_last must be True or False"):
        train_semi(FixMatch(_model()), split, views, CONFIG.replace(channels_last="yes"), progress=False)
