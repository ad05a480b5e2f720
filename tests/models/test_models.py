"""Every registered model: forward, backward, shapes, no NaN; parameter counts against hand counts."""
import pytest
import torch

from growkit import models as M
from growkit.errors import GrowkitError

SMALL = dict(in_channels=1, num_classes=7, image_size=8)


@pytest.mark.parametrize("name", M.list_models("image"))
def test_forward_backward_every_model(name):
    torch.manual_seed(0)
    m = M.create(name, **SMALL)
    x = torch.randn(5, 1, 8, 8)
    y = m(x)
    assert y.shape == (5, 7)
    assert torch.isfinite(y).all()
    y.logsumexp(1).mean().backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", M.list_models("image"))
def test_spec_round_trip(name):
    m = M.create(name, **SMALL)
    m2 = M.from_spec(m.spec)
    assert m2.spec == m.spec
    assert [p.shape for p in m2.parameters()] == [p.shape for p in m.parameters()]


def conv(cin, cout, k):  # weights of a bias-free conv
    return cin * cout * k * k


def bn(c):
    return 2 * c


def test_basic3resnet_111_hand_count():
    # stem 3->16; stage widths 16, 32, 64; 1x1 projections where the shape changes; fc 64->10
    stem = conv(3, 16, 3) + bn(16)
    s0 = conv(16, 16, 3) + bn(16) + conv(16, 16, 3) + bn(16)
    s1 = conv(16, 32, 3) + bn(32) + conv(32, 32, 3) + bn(32) + conv(16, 32, 1) + bn(32)
    s2 = conv(32, 64, 3) + bn(64) + conv(64, 64, 3) + bn(64) + conv(32, 64, 1) + bn(64)
    fc = 64 * 10 + 10
    assert stem + s0 + s1 + s2 + fc == 78042
    assert M.create("Basic3ResNet-1-1-1").num_params() == 78042


def test_resnet20_is_the_272k_cifar_resnet():
    assert M.create("ResNet20").num_params() == 272474  # He et al. 2016 CIFAR ResNet-20 with B shortcuts


def test_plain3net_hand_count():
    expect = (conv(3, 16, 3) + bn(16) + conv(16, 16, 3) + bn(16) + conv(16, 32, 3) + bn(32)
              + conv(32, 64, 3) + bn(64) + 64 * 10 + 10)
    assert M.create("Plain3Net-1-1-1").num_params() == expect


def test_plain4net_and_basic4resnet_hand_count():
    w = [64, 128, 256, 512]
    plain = conv(3, 64, 3) + bn(64) + sum(conv(a, b, 3) + bn(b) for a, b in zip([64] + w[:-1], w)) + 512 * 10 + 10
    assert M.create("Plain4Net-1-1-1-1").num_params() == plain
    basic = conv(3, 64, 3) + bn(64) + 512 * 10 + 10
    for a, b in zip([64] + w[:-1], w):
        basic += conv(a, b, 3) + bn(b) + conv(b, b, 3) + bn(b) + (conv(a, b, 1) + bn(b) if a != b else 0)
    assert M.create("Basic4ResNet-1-1-1-1").num_params() == basic


def test_resnet50_imagenet_is_bottleneck4resnet_3_4_6_3():
    # torchvision's resnet50 has 25,557,032 parameters; ours is the same network
    m = M.create("Bottleneck4ResNet-3-4-6-3", image_size=224, num_classes=1000)
    assert m.num_params() == 25557032
    assert M.count_macs(m) == pytest.approx(4.09e9, rel=0.01)  # 4.1 GMACs per image


def test_resnet18_imagenet_hand_count_11_689_512():
    """He et al.'s ResNet-18, counted by hand: 7x7/2 stem, basic blocks [2, 2, 2, 2], 1x1 projections."""
    stem = conv(3, 64, 7) + bn(64)
    stage1 = 2 * (2 * conv(64, 64, 3) + 2 * bn(64))
    total = stem + stage1 + 512 * 1000 + 1000
    for a, b in ((64, 128), (128, 256), (256, 512)):
        first = conv(a, b, 3) + conv(b, b, 3) + 2 * bn(b) + conv(a, b, 1) + bn(b)
        second = 2 * conv(b, b, 3) + 2 * bn(b)
        total += first + second
    assert total == 11_689_512  # torchvision's resnet18
    m = M.create("ResNet18")  # ImageNet by default: 1000 classes, 224 pixels
    assert m.num_params() == 11_689_512 and m.stem[0].kernel_size == (7, 7) and len(m.stem) == 4
    assert M.count_macs(m) == pytest.approx(1.814e9, rel=0.01)  # 1.8 GMACs per image


def test_resnet18_uniform_seed_hand_count():
    w = 16  # every conv (and the stem) at 16 filters: the stride-2 blocks still project (1x1) their input
    expect = conv(3, w, 7) + bn(w) + 2 * (2 * conv(w, w, 3) + 2 * bn(w)) + w * 1000 + 1000
    expect += 3 * (2 * conv(w, w, 3) + 2 * bn(w) + conv(w, w, 1) + bn(w) + 2 * conv(w, w, 3) + 2 * bn(w))
    assert expect == 57624
    m = M.create("resnet18", widths=w)
    assert m.num_params() == expect and m.spec["stem_width"] == w and m.spec["depths"] == [2, 2, 2, 2]
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 1000)  # the ImageNet stem from 64 pixels up


def test_lenet5_mnist_is_61706():
    # conv1 6x1x5x5+6, conv2 16x6x5x5+16, fc 400->120->84->10
    assert (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10) == 61706
    assert M.create("LeNet5", in_channels=1, image_size=28).num_params() == 61706


def test_vgg_hand_count_and_macs():
    cfg = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    params = sum(conv(a, b, 3) + bn(b) for a, b in zip([3] + cfg[:-1], cfg)) + 512 * 10 + 10
    assert M.create("VGG16").num_params() == params
    # spatial sizes 32,32,16,16,8,8,8,4,4,4,2,2,2 on CIFAR: multiply-adds of the convs + the fc
    sizes = [32, 32, 16, 16, 8, 8, 8, 4, 4, 4, 2, 2, 2]
    macs = sum(conv(a, b, 3) * s * s for a, b, s in zip([3] + cfg[:-1], cfg, sizes)) + 512 * 10
    assert M.count_macs(M.create("VGG16")) == macs
    assert M.count_macs(M.create("VGG16"), training=True) > 2 * macs  # backward: about twice the forward


def test_mobilenetv1_hand_count():
    ws = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    params = conv(3, 32, 3) + bn(32) + 1024 * 10 + 10
    for a, b in zip(ws[:-1], ws[1:]):
        params += a * 9 + bn(a) + conv(a, b, 1) + bn(b)  # depthwise 3x3, then pointwise
    assert M.create("MobileNetV1").num_params() == params


def test_uniform_seed_widths():
    m = M.create("VGG19", widths=4)
    assert m.spec["widths"] == [4] * 16
    r = M.create("ResNet32", widths=8)
    assert r.spec["widths"] == [8, 8, 8] and r.spec["stem_width"] == 8


def test_unknown_name_lists_valid_names():
    with pytest.raises(GrowkitError, match="valid: .*Basic3ResNet.*LeNet5"):
        M.create("ResNet9000")


@pytest.mark.parametrize("name,spec,msg", [
    ("Basic3ResNet", {"depths": [1, 1]}, "needs 3 entries"),
    ("Basic3ResNet", {"depths": [1, 0, 1]}, "positive"),
    ("Basic3ResNet-1-x-1", {}, "depths must look like"),
    ("VGG16", {"widths": [4, 4]}, "needs 13 entries"),
    ("LeNet5", {"depthz": 3}, "does not take depthz"),
    ("MobileNetV1", {"widths": -1}, "positive"),
])
def test_bad_spec_values(name, spec, msg):
    with pytest.raises(GrowkitError, match=msg):
        M.create(name, **spec)


def test_macs_counted_on_meta_leave_bn_statistics_alone():
    m = M.create("Basic3ResNet-1-1-1")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    M.count_macs(m, training=True)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_model_names_are_case_insensitive():
    assert M.create("vgg16", widths=4, **dict(in_channels=1, image_size=8)).spec["name"] == "VGG16"
    m = M.create("basic3resnet-1-2-1")
    assert m.arch == "Basic3ResNet-1-2-1"
    assert M.from_spec({**m.spec, "name": "BASIC3RESNET"}).spec == m.spec
    assert M.canonical_name("resnet20") == "ResNet20" and M.canonical_name("nosuchnet") == "nosuchnet"
    with pytest.raises(GrowkitError, match="unknown model 'nosuchnet'"):
        M.create("nosuchnet")


def test_vgg16_with_a_512_hidden_layer_is_the_adenel_autogrow_vgg_of_14_99m():
    # 13 convs 3x3 without bias, each followed by BN (2 per channel); fc 512->512 (+bias), fc 512->10 (+bias)
    cfg = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    convs = 3 * 64 * 9 + 64 * 64 * 9 + 64 * 128 * 9 + 128 * 128 * 9 + 128 * 256 * 9 + 2 * 256 * 256 * 9 \
        + 256 * 512 * 9 + 5 * 512 * 512 * 9
    assert convs == 14_710_464
    bns = 2 * sum(cfg)
    fcs = 512 * 512 + 512 + 512 * 10 + 10
    assert convs + bns + fcs == 14_986_698
    assert M.create("VGG16", hidden=[512], num_classes=10, image_size=32).num_params() == 14_986_698
    assert round(14_986_698 / 1e6, 2) == 14.99


def test_resnet20_hand_count_of_multiply_adds():
    """ResNet-20 on CIFAR (32 pixels): 3x3 stem 3->16, three stages of 3 basic blocks at 16/32/64 channels
    on 32/16/8 pixels, 1x1 projections where the width or resolution changes, a 64->10 classifier."""
    macs, cin = conv(3, 16, 3) * 32 * 32, 16
    for cout, side in ((16, 32), (32, 16), (64, 8)):
        for block in range(3):
            macs += (conv(cin, cout, 3) + conv(cout, cout, 3)) * side * side
            if cin != cout:
                macs += conv(cin, cout, 1) * side * side
            cin = cout
    macs += 64 * 10
    assert M.count_macs(M.create("ResNet20")) == macs


@pytest.mark.parametrize("name, kw, paper", [
    ("VGG16", {"hidden": [512]}, 313e6),  # AdeNeL Table 1 and abstract: 14.99M params, 313M FLOPs
    ("ResNet20", {}, 0.041e9),  # AdeNeL Table 1: 0.27M params, 0.041 G FLOPs
    ("ResNet18", {}, 1.80e9),  # AdeNeL Table 2 (ImageNet): 1.80 G FLOPs
])
def test_macs_are_the_unit_of_the_papers_flops(name, kw, paper):
    """The papers' "FLOPs" are multiply-adds: our counts agree with theirs within their rounding (2-3
    significant figures, 2 %), and a count of 2 FLOPs per multiply-add (twice as large) would not."""
    macs = M.count_macs(M.create(name, **kw))
    assert macs == pytest.approx(paper, rel=0.02)
