"""LARS's foreach step (torch._foreach_* over a group's tensors) against its per-tensor loop."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from sslcookbook.optim import LARS, build_optimizer


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7), torch.nn.ReLU(), torch.nn.Linear(7, 3, bias=False)
        )
        self.unused = torch.nn.Linear(2, 2)  # never in the graph: its grads stay None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def model(dtype: torch.dtype) -> Net:
    torch.manual_seed(0)
    return Net().to(dtype)


def groups(net: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weights with decay and LARS; biases and norms excluded (lars_exclude), as param_groups builds."""
    weights = [p for p in net.parameters() if p.ndim > 1]
    others = [p for p in net.parameters() if p.ndim <= 1]
    return [
        {"params": weights, "weight_decay": weight_decay},
        {"params": others, "weight_decay": 0.0, "lars_exclude": True},
    ]


def train(net: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, start: int = 0) -> None:
    for step in range(start, start + steps):
        dtype = next(net.parameters()).dtype
        x = torch.randn(8, 5, dtype=dtype, generator=torch.Generator().manual_seed(step))
        opt.zero_grad(set_to_none=True)
        net(x).square().mean().backward()
        if step % 2 == 1:  # a tensor without a gradient for a step, then with one again
            net.layers[3].weight.grad = None
        opt.step()


def lars(net, foreach, weight_decay=0.01, clip=False) -> LARS:
    return LARS(groups(net, weight_decay), lr=0.3, momentum=0.9, eta=0.02, clip=clip, foreach=foreach)


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_foreach_and_loop_give_identical_parameters(dtype, clip, weight_decay):
    nets = [model(dtype) for _ in range(3)]
    opts = [lars(net, foreach, weight_decay, clip) for net, foreach in zip(nets, [False, True, None])]
    for net, opt in zip(nets, opts):
        train(net, opt, steps=6)
    before = model(dtype)
    assert not torch.equal(nets[0].layers[0].weight, before.layers[0].weight)  # it trained
    assert torch.equal(nets[0].unused.weight, before.unused.weight)  # None grads: untouched
    assert_same_parameters(nets[0], nets[1])
    assert_same_parameters(nets[0], nets[2])
    for p0, p1 in zip(nets[0].parameters(), nets[1].parameters()):
        s0, s1 = opts[0].state.get(p0), opts[1].state.get(p1)
        assert (s0 is None) == (s1 is None)
        if s0 is not None:
            assert s0.keys() == s1.keys() == {"momentum_buffer"}
            assert torch.equal(s0["momentum_buffer"], s1["momentum_buffer"])


def test_foreach_takes_mixed_dtypes_in_one_group():
    a = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3, 2, dtype=torch.float64))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    opts = [LARS(a, lr=0.1, weight_decay=0.1, foreach=False), LARS(b, lr=0.1, weight_decay=0.1, foreach=True)]
    for step in range(3):
        for ps, opt in zip((a, b), opts):
            for i, p in enumerate(ps):
                p.grad = torch.full_like(p, 0.1 * (step + 1) * (i + 1))
            opt.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)


@pytest.mark.parametrize(("saved", "loaded"), [(True, False), (False, True)])
def test_a_state_dict_loads_across_the_two_and_training_continues_identically(saved, loaded):
    straight, first = model(torch.float32), model(torch.float32)
    opt_straight, opt_first = lars(straight, foreach=False, clip=True), lars(first, foreach=saved, clip=True)
    train(straight, opt_straight, steps=7)
    train(first, opt_first, steps=4)
    resumed = model(torch.float32)
    resumed.load_state_dict(first.state_dict())
    opt_resumed = lars(resumed, foreach=loaded, clip=True)
    opt_resumed.load_state_dict(opt_first.state_dict())
    assert opt_resumed.foreach is loaded  # this optimiser's choice, not the checkpoint's
    assert opt_first.state_dict()["param_groups"] == opt_resumed.state_dict()["param_groups"]
    train(resumed, opt_resumed, steps=3, start=4)
    assert_same_parameters(straight, resumed)


def test_the_default_is_foreach_on_one_accelerator_and_the_loop_on_the_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(LARS, "_step_loop", lambda self, group, params: calls.append("loop"))
    monkeypatch.setattr(LARS, "_step_foreach", lambda self, group, params: calls.append("foreach"))

    def step_on(*devices: str) -> list[str]:
        params = [torch.nn.Parameter(torch.zeros(2, 2, device=d)) for d in devices]
        for p in params:
            p.grad = torch.zeros_like(p)
        calls.clear()
        LARS(params, lr=0.1).step()
        return list(calls)

    assert step_on("meta", "meta") == ["foreach"]  # any one non-CPU device (a GPU's case)
    assert step_on("cpu", "cpu") == ["loop"]  # measured faster there (see the class docstring)
    assert step_on("cpu", "meta") == ["loop"]  # the foreach ops need one device
    net = model(torch.float32)
    opt = build_optimizer(net, "lars", lr=0.1, weight_decay=0.01)
    assert opt.foreach is None
    calls.clear()
    train(net, opt, steps=1)
    assert calls == ["loop"] * len(opt.param_groups)


def test_the_choice_survives_copies_and_bad_values_are_refused():
    explicit = lars(model(torch.float32), foreach=True)
    assert copy.deepcopy(explicit).foreach is True
    assert pickle.loads(pickle.dumps(explicit)).foreach is True
    with pytest.raises(ValueError, match="foreach must be None, True or False"):
        LARS([torch.nn.Parameter(torch.zeros(2))], lr=0.1, foreach="yes")
