"""DINO loss: the reference (the formula in losses/dino.py) vs an fp64 double loop; the Triton kernel
(interpreter) vs the reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslcookbook.kernels import dino
from sslcookbook.losses.dino import dino_loss, dino_loss_reference


def dino_by_loops(student, teacher, center, student_temperature, teacher_temperature):
    """The paper's double sum over crop pairs, one soft-target cross-entropy per pair, in fp64."""
    total, pairs = student.new_zeros((), dtype=torch.float64), 0
    for t in range(teacher.shape[0]):
        target = F.softmax((teacher[t].double() - center.double()) / teacher_temperature, dim=-1).detach()
        for s in range(student.shape[0]):
            if s == t:
                continue
            total = total + F.cross_entropy(student[s].double() / student_temperature, target)
            pairs += 1
    return total / pairs


def make_inputs(n_crops, n_teacher, batch, k, dtype=torch.float32, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    student = (scale * torch.randn(n_crops, batch, k, generator=g, dtype=torch.float64)).to(dtype)
    # The teacher sees the same images as the student's first T crops: correlated, not identical.
    teacher = student[:n_teacher].double() + scale * torch.randn(
        n_teacher, batch, k, generator=g, dtype=torch.float64
    )
    center = 0.5 * torch.randn(k, generator=g, dtype=torch.float64)
    return student.requires_grad_(), teacher.to(dtype), center.to(dtype)


def loss_and_grad(loss_fn, student, teacher, center, weight=1.0, **kwargs):
    student = student.detach().clone().requires_grad_()
    loss = loss_fn(student, teacher, center, **kwargs)
    (grad,) = torch.autograd.grad(weight * loss, student)
    return loss.detach(), grad


# ---------------------------------------------------------------------------------------------------
# The reference
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_crops,n_teacher,batch,k,student_temperature,teacher_temperature",
    [
        (2, 2, 3, 5, 0.1, 0.04),
        (4, 2, 2, 7, 0.1, 0.04),
        (6, 2, 3, 16, 0.5, 0.1),
        (3, 1, 4, 9, 1.0, 0.01),
        (5, 3, 1, 4, 0.05, 0.07),
    ],
)
def test_reference_matches_loops_values_and_gradients(
    n_crops, n_teacher, batch, k, student_temperature, teacher_temperature
):
    student, teacher, center = make_inputs(n_crops, n_teacher, batch, k, torch.float64, seed=n_crops * 10 + k)
    temps = {"student_temperature": student_temperature, "teacher_temperature": teacher_temperature}
    ours, g_ours = loss_and_grad(dino_loss_reference, student, teacher, center, **temps)
    ref, g_ref = loss_and_grad(
        lambda s, t, c, **kw: dino_by_loops(s, t, c, kw["student_temperature"], kw["teacher_temperature"]),
        student,
        teacher,
        center,
        **temps,
    )
    torch.testing.assert_close(ours, ref, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-12)


def test_reference_gradcheck():
    student, teacher, center = make_inputs(3, 2, 2, 5, torch.float64, scale=1.0)
    assert torch.autograd.gradcheck(lambda x: dino_loss_reference(x, teacher, center, 0.3, 0.1), (student,))


def test_known_values():
    # A uniform student (constant logits) has cross-entropy log K against any target.
    k = 11
    student = torch.full((4, 3, k), 2.5, dtype=torch.float64)
    _, teacher, center = make_inputs(4, 2, 3, k, torch.float64)
    for backend in ("torch", "triton"):
        dtype = torch.float64 if backend == "torch" else torch.float32
        loss = dino_loss(student.to(dtype), teacher.to(dtype), center.to(dtype), backend=backend)
        assert loss.item() == pytest.approx(math.log(k), rel=1e-6)
    # Identical one-hot-like rows everywhere: a sharp teacher equal to a sharp student gives ≈ 0.
    peaks = torch.zeros(3, 2, 6)
    peaks[..., 1] = 20.0
    loss = dino_loss(peaks, peaks[:2], torch.zeros(6), 0.1, 0.04, backend="triton")
    assert 0.0 <= loss.item() < 1e-6


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_no_gradient_into_teacher_or_center(backend):
    student, teacher, center = make_inputs(4, 2, 3, 10)
    teacher.requires_grad_()
    center.requires_grad_()
    loss = dino_loss(student, teacher, center, backend=backend)
    loss.backward()
    assert teacher.grad is None and center.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    # Without a student that requires grad, nothing is differentiable.
    assert not dino_loss(student.detach(), teacher, center, backend=backend).requires_grad


def test_low_precision_reference_is_fp32():
    student, teacher, center = make_inputs(3, 2, 4, 12)
    loss = dino_loss_reference(student.half(), teacher.half(), center)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(dino_loss_reference(student, teacher, center).item(), rel=2e-2)


# ---------------------------------------------------------------------------------------------------
# The Triton kernel (interpreter) against the reference, forward and backward
# ---------------------------------------------------------------------------------------------------


def assert_kernel_matches(
    student, teacher, center, rtol=2e-5, atol=1e-6, grad_rtol=1e-4, grad_atol=1e-6, **temps
):
    """Kernel on the given dtype vs the fp64 reference; the incoming gradient is not 1 (weight 3.7)."""
    loss, grad = loss_and_grad(dino_loss, student, teacher, center, weight=3.7, backend="triton", **temps)
    ref, ref_grad = loss_and_grad(
        dino_loss_reference, student.double(), teacher.double(), center.double(), weight=3.7, **temps
    )
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert grad.dtype == student.dtype and grad.shape == student.shape
    torch.testing.assert_close(loss.double(), ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(
        grad.double(), ref_grad, rtol=grad_rtol, atol=grad_atol * ref_grad.abs().max().item()
    )
    return loss, grad


@pytest.mark.parametrize(
    "n_crops,n_teacher,batch,k",
    [
        (2, 2, 4, 7),  # K below one block
        (4, 2, 3, 33),  # one partial block
        (6, 2, 3, 100),  # one full block and a partial one
        (4, 1, 3, 257),  # T = 1, five blocks, the last with one column
        (3, 1, 2, 128),  # K an exact multiple of the block
    ],
)
def test_kernel_matches_reference_shapes(n_crops, n_teacher, batch, k):
    student, teacher, center = make_inputs(n_crops, n_teacher, batch, k, seed=k)
    assert_kernel_matches(student, teacher, center)


@pytest.mark.parametrize("student_temperature", [0.05, 1.0])
@pytest.mark.parametrize("teacher_temperature", [0.01, 0.1])
def test_kernel_extreme_temperatures(student_temperature, teacher_temperature):
    student, teacher, center = make_inputs(3, 2, 2, 70, seed=7)
    assert_kernel_matches(
        student,
        teacher,
        center,
        student_temperature=student_temperature,
        teacher_temperature=teacher_temperature,
    )


def test_kernel_large_logits_do_not_overflow():
    # Logits of ±50 at τ_s = 0.05, τ_t = 0.01: exponents of 1000 and 5000 before the max is subtracted.
    g = torch.Generator().manual_seed(3)
    student = (50 * (2 * torch.rand(4, 3, 90, generator=g) - 1)).requires_grad_()
    teacher = 50 * (2 * torch.rand(2, 3, 90, generator=g) - 1)
    center = torch.zeros(90)
    temps = {"student_temperature": 0.05, "teacher_temperature": 0.01}
    # The loss is ~ 1e3 here; the kernel keeps it to fp32 rounding of the result, not of the logits/τ.
    loss, grad = assert_kernel_matches(student, teacher, center, rtol=2e-6, **temps)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_kernel_small_loss_under_large_logits_keeps_its_digits():
    # Student = teacher, sharp: the loss is the teacher's entropy (≈ 0.03) while LSE ≈ 1000, so computing
    # n·LSE − <P̄, x/τ> would cancel away ~1e-4 of it; the kernel sums non-negative terms instead.
    g = torch.Generator().manual_seed(4)
    image_logits = 50 * torch.rand(1, 3, 64, generator=g)
    teacher = image_logits.expand(2, 3, 64).contiguous()
    student = image_logits.expand(4, 3, 64).contiguous().requires_grad_()
    center = torch.zeros(64)
    temps = {"student_temperature": 0.05, "teacher_temperature": 0.05}
    loss, grad = loss_and_grad(dino_loss, student, teacher, center, backend="triton", **temps)
    ref, ref_grad = loss_and_grad(dino_loss_reference, student.double(), teacher.double(), center, **temps)
    assert 1e-4 < ref.item() < 1.0
    torch.testing.assert_close(loss.double(), ref, rtol=0, atol=2e-7)
    # The gradient n·q − P̄ vanishes here (q = p); both must be ≈ 0 against terms of size 1/(τ_s·pairs·B).
    assert grad.abs().max() < 1e-7 and ref_grad.abs().max() < 1e-7


def test_kernel_fp16_and_mixed_dtypes():
    student, teacher, center = make_inputs(4, 2, 3, 100, seed=5)
    # fp16 logits with an fp32 center, as under autocast with an fp32 buffer.
    assert_kernel_matches(student.half(), teacher.half(), center, rtol=1e-5, grad_rtol=2e-3, grad_atol=1e-3)


def test_kernel_noncontiguous_inputs_and_repeated_backward():
    student, teacher, center = make_inputs(3, 2, 4, 40, seed=11)
    # (B, S, K) storage viewed as (S, B, K): not contiguous.
    student_t = student.detach().transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()
    assert not student_t.is_contiguous()
    loss = dino_loss(student_t, teacher, center, backend="triton")
    (g1,) = torch.autograd.grad(loss, student_t, retain_graph=True)
    (g2,) = torch.autograd.grad(2 * loss, student_t)  # the backward recomputes: a second call is exact
    torch.testing.assert_close(g2, 2 * g1)
    ref, ref_grad = loss_and_grad(dino_loss_reference, student, teacher, center)
    torch.testing.assert_close(loss.detach(), ref, rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(g1, ref_grad, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------------------------------
# Input validation and backend choice
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shapes,match",
    [
        (((4, 3, 8), (2, 3, 8), (7,)), r"center must have shape \(8,\)"),
        (((4, 3, 8), (2, 5, 8), (8,)), "must agree on"),
        (((4, 3, 8), (2, 3, 9), (8,)), "must agree on"),
        (((12, 8), (2, 3, 8), (8,)), "student must be 3-D"),
        (((4, 3, 8), (3, 8), (8,)), "teacher must be 3-D"),
        (((4, 3, 8), (2, 3, 8), (1, 8)), "center must be 1-D"),
        (((2, 3, 8), (3, 3, 8), (8,)), "T=3 crops but student only S=2"),
        (((1, 3, 8), (1, 3, 8), (8,)), "S ≥ 2"),
        (((4, 3, 8), (0, 3, 8), (8,)), "T = 0"),
        (((4, 0, 8), (2, 0, 8), (8,)), "at least one image"),
    ],
)
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_bad_shapes(backend, shapes, match):
    student, teacher, center = (torch.randn(shape) for shape in shapes)
    with pytest.raises(ValueError, match=match):
        dino_loss(student, teacher, center, backend=backend)


@pytest.mark.parametrize(
    "temps,error",
    [
        ((0.0, 0.04), ValueError),
        ((0.1, -1.0), ValueError),
        ((float("nan"), 0.04), ValueError),
        ((0.1, True), TypeError),
        ((torch.tensor(0.1), 0.04), TypeError),
    ],
)
def test_bad_temperatures(temps, error):
    student, teacher, center = make_inputs(3, 2, 2, 5)
    with pytest.raises(error, match="temperature"):
        dino_loss(student, teacher, center, *temps)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, in the interpreter
@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize(
    "culprit,bad",
    [
        ("student", math.nan),
        ("teacher", math.nan),
        ("center", math.nan),
        ("student", math.inf),
        ("teacher", math.inf),
    ],
)
def test_non_finite_inputs_are_named(backend, culprit, bad):
    inputs = dict(zip(("student", "teacher", "center"), make_inputs(3, 2, 2, 6)))
    inputs = {name: t.detach().clone() for name, t in inputs.items()}
    inputs[culprit].view(-1)[1] = bad
    with pytest.raises(ValueError, match=f"{culprit} contains NaN or inf"):
        dino_loss(**inputs, backend=backend)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_infinite_center_entry_only_removes_a_prototype(backend):
    # c_k = +inf gives p_k = 0 exactly: a finite loss, equal to dropping prototype k from the teacher.
    student, teacher, center = make_inputs(3, 2, 2, 6)
    blocked = center.clone()
    blocked[2] = math.inf
    loss = dino_loss(student, teacher, blocked, backend=backend)
    targets = F.softmax((teacher - center) / 0.04, dim=-1)
    targets[..., 2] = 0
    targets = targets / targets.sum(-1, keepdim=True)
    log_q = F.log_softmax(student.detach() / 0.1, dim=-1)
    expected = -(targets[0] * (log_q[1] + log_q[2])).sum(-1) - (targets[1] * (log_q[0] + log_q[2])).sum(-1)
    torch.testing.assert_close(loss, expected.mean() / 4, rtol=1e-5, atol=1e-6)


def test_overflow_with_finite_inputs_is_explained():
    student = torch.full((3, 2, 4), 1e36)
    student[..., 0] = -1e36
    with pytest.raises(ValueError, match="overflowed"):
        dino_loss(student, torch.zeros(2, 2, 4), torch.zeros(4), student_temperature=1e-3, backend="torch")


def test_bad_types_and_backend():
    student, teacher, center = make_inputs(3, 2, 2, 5)
    with pytest.raises(ValueError, match="backend must be one of"):
        dino_loss(student, teacher, center, backend="cuda")
    with pytest.raises(TypeError, match="floating point"):
        dino_loss(student.long(), teacher, center)
    with pytest.raises(TypeError, match="torch.Tensor"):
        dino_loss(student.tolist(), teacher, center)
    with pytest.raises(TypeError, match="bfloat16"):
        dino_loss(student.bfloat16(), teacher.bfloat16(), center, backend="triton")
    with pytest.raises(TypeError, match="float32, float16 and bfloat16"):
        dino_loss(student.double(), teacher.double(), center.double(), backend="triton")
    with pytest.raises(ValueError, match="different devices"):
        dino_loss(student, teacher, center.to("meta"))


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setattr(dino, "INTERPRETED", False)
    student, teacher, center = make_inputs(3, 2, 2, 5)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        dino_loss(student, teacher, center, backend="triton")


def test_auto_uses_the_reference_on_cpu(monkeypatch):
    def fail(*args):
        raise AssertionError("the Triton kernel was used for CPU tensors with backend='auto'")

    monkeypatch.setattr(dino._DinoLossTriton, "apply", fail)
    student, teacher, center = make_inputs(3, 2, 2, 5, torch.float64)
    loss = dino_loss(student, teacher, center)
    torch.testing.assert_close(loss, dino_by_loops(student, teacher, center, 0.1, 0.04))
