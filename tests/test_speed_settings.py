"""The trainer's speed settings (TrainConfig.channels_last, view_forward, compile, amp on the CPU) and
TwoViewMethod's per-view forward: each path runs on tiny inputs and gives what the default path gives."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from sslcookbook.methods import BYOL, MAE, SimCLR
from sslcookbook.models import SmallCNN, vit_tiny
from sslcookbook.train import TrainConfig, compile_backbone, fit

CONFIG = TrainConfig(epochs=1, batch_size=16, lr=0.05, max_steps_per_epoch=2, log_every=1)


@dataclass
class TinyData:
    images: torch.Tensor
    labels: torch.Tensor


def tiny_data(n=32):
    g = torch.Generator().manual_seed(0)
    return TinyData(torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g), torch.arange(n) % 4)


def noisy_views(images, generator=None):
    x = images.float() / 255
    return [x + 0.1 * torch.randn(x.shape, generator=generator) for _ in range(2)]


def new_simclr(seed=0):
    torch.manual_seed(seed)
    return SimCLR(SmallCNN(in_channels=3, width=8), projector_hidden_dim=16, projector_dim=8)


def train(method, **settings):
    return fit(method, tiny_data(), noisy_views, CONFIG, progress=False, **settings).losses


def test_split_forward_normalises_each_view_with_its_own_batch_statistics():
    method = new_simclr()
    v1, v2 = torch.rand(6, 3, 8, 8), torch.rand(6, 3, 8, 8) * 0.5
    method.view_forward = "split"
    split = method.project_views([v1, v2])
    expected = torch.cat([method.project(v1), method.project(v2)])  # project: one batch, never split
    torch.testing.assert_close(split, expected)
    method.view_forward = "concat"
    concat = method.project_views([v1, v2])
    torch.testing.assert_close(concat, method.project(method.batch([v1, v2])), rtol=0, atol=0)
    assert not torch.allclose(concat, split, atol=1e-4)  # BatchNorm saw the 12 images together
    method.view_forward = "auto"  # the CPU's choice is split
    torch.testing.assert_close(method.project_views([v1, v2]), split)


def test_view_forward_rejects_unknown_modes_and_non_two_view_methods():
    with pytest.raises(ValueError, match="view_forward must be one of"):
        new_simclr().view_forward = "twice"

    class OneView(torch.nn.Module):
        backbone = None

    with pytest.raises(ValueError, match="two-view methods"):
        fit(OneView(), tiny_data(), noisy_views, CONFIG, progress=False, view_forward="split")


def test_channels_last_trains_in_nhwc_with_the_same_losses():
    reference = train(new_simclr())
    method = new_simclr()
    losses = train(method, channels_last=True)
    conv = method.backbone.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(reference), rtol=1e-4, atol=1e-5)


def test_split_forward_trains_byol_through_fit():
    torch.manual_seed(0)
    method = BYOL(SmallCNN(3, width=8), 16, 8, 16)
    losses = train(method, view_forward="split", channels_last=True)
    assert method.view_forward == "split" and len(losses) == 2
    assert torch.isfinite(torch.tensor(losses)).all()


def test_compile_path_gives_the_eager_losses():
    # The "eager" backend runs TorchDynamo's capture without code generation: the compile path is
    # exercised in a second (inductor takes minutes on this CPU; bench_train.py measures it).
    reference = train(new_simclr())
    method = new_simclr()
    losses = train(method, compile="eager")
    assert method.backbone._compiled_call_impl is not None
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(reference), rtol=1e-4, atol=1e-5)
    assert "_orig_mod" not in "".join(method.state_dict())  # checkpoints keep their keys


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no native bf16")
def test_bf16_autocast_on_the_cpu_stays_close_to_fp32():
    reference = train(new_simclr())
    losses = train(new_simclr(), amp=True, channels_last=True)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(reference), rtol=0.05, atol=0.05)


def test_compile_mode_reaches_torch_compile_and_default_trains_a_step(monkeypatch):
    seen = []
    real_compile = torch.compile

    def recording_compile(*args, **kwargs):
        seen.append(kwargs)
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", recording_compile)
    losses = train(new_simclr(), compile="eager", compile_mode="default", max_steps_per_epoch=1)
    assert len(losses) == 1 and torch.isfinite(torch.tensor(losses)).all()
    assert seen == [{"backend": "eager", "mode": "default"}]


@pytest.mark.parametrize("mode", ["fast", "reduce_overhead", "max-autotune-no-cudagraphs", ""])
def test_an_unknown_compile_mode_is_refused_before_training(mode):
    with pytest.raises(ValueError, match="compile_mode must be one of None, 'default', 'reduce-overhead'"):
        train(new_simclr(), compile=True, compile_mode=mode)


def new_mae(seed=0):
    torch.manual_seed(seed)
    return MAE(vit_tiny(in_channels=3, image_size=8, patch_size=4, depth=2), 16, 1, 2)


def one_view(images, generator=None):
    return [images.float() / 255]


def test_compile_reaches_the_token_path_of_a_vit_method():
    # MAE calls the ViT's embed_patches and encode, never its forward: compile_backbone compiles each
    # block, so the compiled graphs run (and give the eager losses) on the path the method takes.
    reference = fit(new_mae(), tiny_data(), one_view, CONFIG, progress=False).losses
    method = new_mae()
    graphs = []

    def counting_backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    losses = fit(method, tiny_data(), one_view, CONFIG, progress=False, compile=counting_backend).losses
    assert all(block._compiled_call_impl is not None for block in method.backbone.blocks)
    assert method.backbone._compiled_call_impl is None  # its forward is not what MAE calls
    assert graphs, "no block ran through TorchDynamo"
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(reference), rtol=1e-4, atol=1e-5)
    assert "_orig_mod" not in "".join(method.state_dict())


def test_compile_backbone_compiles_a_cnn_whole():
    cnn = SmallCNN(in_channels=3, width=8)
    compile_backbone(cnn, backend="eager")
    assert cnn._compiled_call_impl is not None
