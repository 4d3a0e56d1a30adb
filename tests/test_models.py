import pytest
import torch

from sslcookbook.models import SmallCNN, build_backbone, mlp, resnet18_cifar


@pytest.mark.parametrize("channels,size", [(1, 8), (3, 32), (3, 17)])
def test_small_cnn_features(channels, size):
    net = SmallCNN(in_channels=channels, width=8)
    out = net(torch.rand(2, channels, size, size))
    assert out.shape == (2, net.feature_dim) == (2, 32)


def test_resnet18_cifar_keeps_resolution_in_the_stem():
    net = resnet18_cifar()
    inner = net.net
    assert inner.conv1.kernel_size == (3, 3) and inner.conv1.stride == (1, 1)
    assert isinstance(inner.maxpool, torch.nn.Identity)
    x = torch.rand(2, 3, 32, 32)
    assert net(x).shape == (2, 512)
    # the stem keeps 32×32: layer1 sees the full resolution
    seen = {}

    def record(module, inputs, output):
        seen["shape"] = output.shape

    inner.layer1.register_forward_hook(record)
    net(x)
    assert seen["shape"][-2:] == (32, 32)


def test_projector_and_registry():
    head = mlp(32, 64, 16)
    assert head(torch.randn(4, 32)).shape == (4, 16)
    with pytest.raises(ValueError, match="choose one of"):
        build_backbone("vgg", 3)
