"""Real classifiers against the receptive fields that the literature gives.

Every expected value in this file is obtained WITHOUT rfkit: for each network, the layers along the
longest path (and, for ``size_min``, the shortest path) are written out by hand as
``(kernel, stride, left padding[, dilation])`` tuples, read from the architecture's definition, and pushed
through the forward recurrence of Araujo et al. (Distill 2019), per axis:

    k_eff = d (k - 1) + 1
    r'  = r + (k_eff - 1) S          (size: the longest path gives the max over paths)
    S'  = S s
    c0' = c0 + ((k_eff - 1) / 2 - p) S     (input pixel centres at integer coordinates)
    P   = (r - 1) / 2 - c0               (effective padding)

Where a published number exists it is quoted with its source, and ``test_hand_derivation_reproduces_
published_table`` first checks that the same hand derivation of the *published* architecture gives the
published number (so the derivation method is anchored to the literature). rfkit is then checked against
the published number where the torchvision/timm implementation has the same geometry as the published
model, and against the hand derivation everywhere (size, size_min, stride, centre and padding).

Sources
-------
[Distill]  A. Araujo, W. Norris, J. Sim, "Computing Receptive Fields of Convolutional Neural Networks",
           Distill 2019, doi:10.23915/distill.00021, table of receptive fields of popular convnets
           (TF-Slim models); the same table is in the README of github.com/google-research/receptive_field.
           Whole-network values (r / S / P): alexnet_v2 195/32/64, vgg_16 212/32/90,
           inception_v3 1311/32/618, resnet_v1_50 483/32/239.
[RF-table] github.com/google-research/receptive_field, receptive_field/RECEPTIVE_FIELD_TABLE.md:
           per-end-point r / S / P of the TF-Slim models (rows at resolution 224 quoted below; for the
           models used here the rows at resolution None and 321 give the same r and S, and the same P
           for alexnet_v2, vgg_16 and inception_v3, whose paddings do not depend on the input size).
[TF-Slim]  tensorflow/models, research/slim/nets/{alexnet,vgg,resnet_v1,resnet_utils,inception_v3}.py:
           the layer definitions of the published models.
[tv]       torchvision/models/{alexnet,vgg,resnet,densenet,inception,efficientnet}.py.
[timm]     timm/models/{convnext,efficientnet,resnet}.py (timm 1.0).
Papers for the layouts: He et al. 2016 (ResNet); Simonyan & Zisserman 2015 (VGG, config D);
Krizhevsky 2014, "One weird trick for parallelizing CNNs" (torchvision's AlexNet, per its docstring);
Huang et al. 2017 (DenseNet-121, block config 6-12-24-16); Szegedy et al. 2016 (Inception-v3);
Liu et al. 2022 (ConvNeXt-T: 4x4/4 patchify stem, 7x7 depthwise, 2x2/2 downsampling, depths 3-3-9-3);
Tan & Le 2019, Table 1 (EfficientNet-B0 stages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import pytest

import rfkit

SAME = "SAME"  # TensorFlow 'SAME' padding: total max((ceil(n/s) - 1) s + k_eff - n, 0), floor half on the left


# --- the hand derivation ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Derived:
    size: Fraction
    stride: Fraction
    center: Fraction

    @property
    def padding(self) -> Fraction:
        return (self.size - 1) / 2 - self.center


def derive(segments, n: int) -> dict[str, Derived]:
    """Distill's forward recurrence along one path, on one axis of input length ``n``.

    ``segments`` is a list of ``(end-point name, [layer, ...])``; a layer is ``(k, s, p)`` or
    ``(k, s, p, d)`` with ``p`` the LEFT padding (or ``SAME``). Returns the state after each segment.
    ``n`` (the feature-map length) is tracked only to resolve ``SAME`` paddings."""
    r, S, c = Fraction(1), Fraction(1), Fraction(0)
    out = {}
    for name, layers in segments:
        for layer in layers:
            k, s, p, d = layer if len(layer) == 4 else (*layer, 1)
            ke = d * (k - 1) + 1
            if p == SAME:
                n_out = -(-n // s)
                p = max((n_out - 1) * s + ke - n, 0) // 2
            else:
                n_out = (n + 2 * p - ke) // s + 1
            r += (ke - 1) * S
            c += (Fraction(ke - 1, 2) - p) * S
            S *= s
            n = n_out
        out[name] = Derived(r, S, c)
    return out


# --- AlexNet ----------------------------------------------------------------------------------------------
# TF-Slim alexnet_v2 [TF-Slim alexnet.py]: conv1 11x11/4 'VALID'; pool1 3x3/2 VALID; conv2 5x5 SAME;
# pool2 3x3/2; conv3-5 3x3 SAME; pool5 3x3/2 (max_pool2d defaults to VALID in alexnet_v2_arg_scope).
SLIM_ALEXNET_V2 = [
    ("conv1", [(11, 4, 0)]),
    ("pool1", [(3, 2, 0)]),
    ("conv2", [(5, 1, 2)]),
    ("pool2", [(3, 2, 0)]),
    ("conv3", [(3, 1, 1)]),
    ("conv4", [(3, 1, 1)]),
    ("conv5", [(3, 1, 1)]),
    ("pool5", [(3, 2, 0)]),
]
# torchvision alexnet [tv alexnet.py]: the same kernels and strides, but conv1 has padding=2 (features.0 =
# Conv2d(3, 64, 11, stride=4, padding=2)). Sizes and strides therefore equal alexnet_v2's, while the
# effective padding is 2 larger at every end-point (P = sum_l p_l S_(l-1): conv1 adds 2 * 1) and every
# centre is 2 pixels further left: pool5 is 195 / 32 / P 66, c0 31 (alexnet_v2: P 64, c0 33).
TV_ALEXNET = [
    ("features.0", [(11, 4, 2)]),  # conv1
    ("features.2", [(3, 2, 0)]),  # pool1
    ("features.3", [(5, 1, 2)]),  # conv2
    ("features.5", [(3, 2, 0)]),  # pool2
    ("features.6", [(3, 1, 1)]),  # conv3
    ("features.8", [(3, 1, 1)]),  # conv4
    ("features.10", [(3, 1, 1)]),  # conv5
    ("features.12", [(3, 2, 0)]),  # pool5
]
TV_ALEXNET_TO_SLIM = {
    "features.0": "conv1",
    "features.2": "pool1",
    "features.3": "conv2",
    "features.6": "conv3",
    "features.8": "conv4",
    "features.10": "conv5",
    "features.12": "pool5",
}

# --- VGG-16 -----------------------------------------------------------------------------------------------
# Config D: 13 convs 3x3/1 pad 1 and 5 max-pools 2x2/2 [tv vgg.py cfgs["D"]]. TF-Slim vgg_16 uses 3x3
# SAME convs (pad 1) and 2x2/2 VALID pools: the same geometry, so the published numbers apply directly.
_c3 = (3, 1, 1)
_p2 = (2, 2, 0)
TV_VGG16 = [
    ("features.0", [_c3]),  # conv1_1
    ("features.2", [_c3]),  # conv1_2
    ("features.4", [_p2]),  # pool1
    ("features.5", [_c3]),  # conv2_1
    ("features.7", [_c3]),  # conv2_2
    ("features.9", [_p2]),  # pool2
    ("features.10", [_c3]),  # conv3_1
    ("features.12", [_c3]),  # conv3_2
    ("features.14", [_c3]),  # conv3_3
    ("features.16", [_p2]),  # pool3
    ("features.17", [_c3]),  # conv4_1
    ("features.19", [_c3]),  # conv4_2
    ("features.21", [_c3]),  # conv4_3
    ("features.23", [_p2]),  # pool4
    ("features.24", [_c3]),  # conv5_1
    ("features.26", [_c3]),  # conv5_2
    ("features.28", [_c3]),  # conv5_3: 196 / 16 / c0 7.5 / P 90 (not in [RF-table])
    ("features.30", [_p2]),  # pool5:   212 / 32 / c0 15.5 / P 90 = [Distill] vgg_16
]
TV_VGG16_TO_SLIM = {
    "features.0": "conv1/conv1_1",
    "features.4": "pool1",
    "features.5": "conv2/conv2_1",
    "features.9": "pool2",
    "features.10": "conv3/conv3_1",
    "features.12": "conv3/conv3_2",
    "features.16": "pool3",
    "features.17": "conv4/conv4_1",
    "features.19": "conv4/conv4_2",
    "features.23": "pool4",
    "features.24": "conv5/conv5_1",
    "features.26": "conv5/conv5_2",
    "features.30": "pool5",
}


# --- ResNet -----------------------------------------------------------------------------------------------
def tv_bottleneck(stride):
    # torchvision Bottleneck (v1.5): conv1 1x1, conv2 3x3 with the block's stride and padding 1, conv3 1x1
    return [(1, 1, 0), (3, stride, 1), (1, 1, 0)]


def tv_basic(stride):
    # torchvision BasicBlock: conv1 3x3 with the block's stride, conv2 3x3, both padding 1
    return [(3, stride, 1), (3, 1, 1)]


RESNET_STEM = [(7, 2, 3), (3, 2, 1)]  # conv1 7x7/2 pad 3, maxpool 3x3/2 pad 1 (torchvision and timm)
# torchvision resnet50 is "ResNet V1.5" (its docstring): the stride-2 of layer2-4 sits in the 3x3 conv of
# the FIRST bottleneck. Longest path: through every 3x3. layer4: 427 / 32, c0 0 (all pads are "half").
TV_RESNET50 = [
    ("maxpool", RESNET_STEM),
    ("layer1", tv_bottleneck(1) * 3),
    ("layer2", tv_bottleneck(2) + tv_bottleneck(1) * 3),
    ("layer3", tv_bottleneck(2) + tv_bottleneck(1) * 5),
    ("layer4", tv_bottleneck(2) + tv_bottleneck(1) * 2),
]
# Shortest path: the shortcuts. layer1.0 has a 1x1/1 projection (64 -> 256 channels), layer2-4.0 a 1x1/2
# projection, every other block an identity shortcut.
TV_RESNET50_SHORT = [
    ("maxpool", RESNET_STEM),
    ("layer1", [(1, 1, 0)]),
    ("layer2", [(1, 2, 0)]),
    ("layer3", [(1, 2, 0)]),
    ("layer4", [(1, 2, 0)]),
]
TV_RESNET18 = [  # BasicBlocks [2, 2, 2, 2]; layer4: 435 / 32, c0 0
    ("maxpool", RESNET_STEM),
    ("layer1", tv_basic(1) * 2),
    ("layer2", tv_basic(2) + tv_basic(1)),
    ("layer3", tv_basic(2) + tv_basic(1)),
    ("layer4", tv_basic(2) + tv_basic(1)),
]
TV_RESNET18_SHORT = [  # layer1 has identity shortcuts only; layer2-4.0 a 1x1/2 projection
    ("maxpool", RESNET_STEM),
    ("layer1", []),
    ("layer2", [(1, 2, 0)]),
    ("layer3", [(1, 2, 0)]),
    ("layer4", [(1, 2, 0)]),
]


def slim_bottleneck(stride):
    # TF-Slim resnet_v1.bottleneck: conv1 1x1, conv2 = resnet_utils.conv2d_same(3x3, stride) (explicit
    # symmetric pad 1 then VALID), conv3 1x1; the shortcut of a stride-2 unit is a 1x1/2 subsample.
    return [(1, 1, 0), (3, stride, 1), (1, 1, 0)]


# TF-Slim resnet_v1_50, the model of [Distill]'s 483: the stride-2 sits in the LAST unit of block1-3
# (resnet_v1_block: [stride 1] * (units - 1) + [stride]), block4 has stride 1. The RF-table FAQ points
# out this difference from the paper/torchvision convention. conv1 = conv2d_same(7x7, 2) (explicit pad 3);
# pool1 = max_pool2d(3x3, 2, 'SAME'): on the 112x112 map of a 224 input the SAME pad is 0 left / 1 right.
SLIM_RESNET_V1_50 = [
    ("conv1", [(7, 2, 3)]),
    ("pool1", [(3, 2, SAME)]),
    ("block1", slim_bottleneck(1) * 2 + slim_bottleneck(2)),
    ("block2", slim_bottleneck(1) * 3 + slim_bottleneck(2)),
    ("block3", slim_bottleneck(1) * 5 + slim_bottleneck(2)),
    ("block4", slim_bottleneck(1) * 3),
]
# Why 483 (TF-Slim V1) vs 427 (torchvision V1.5), both with S = 32: the 16 3x3 convs are the same, but
# TF-Slim downsamples in the 3x3 of the LAST unit of block1-3, so all 3x3s of block2/3/4 run at the new
# stride 8/16/32; torchvision downsamples in the 3x3 of the FIRST unit of layer2/3/4, which therefore still
# runs at the old stride 4/8/16: 2 * (4 + 8 + 16) = 56 fewer pixels. The original ResNet v1 of the paper
# (stride 2 in the first 1x1 of conv3_x-conv5_x) is RF-equivalent to TF-Slim's, 483 (spot value below).
CAFFE_RESNET50_V1 = [
    ("maxpool", RESNET_STEM),
    ("conv2_x", tv_bottleneck(1) * 3),
    ("conv3_x", [(1, 2, 0), (3, 1, 1), (1, 1, 0)] + tv_bottleneck(1) * 3),
    ("conv4_x", [(1, 2, 0), (3, 1, 1), (1, 1, 0)] + tv_bottleneck(1) * 5),
    ("conv5_x", [(1, 2, 0), (3, 1, 1), (1, 1, 0)] + tv_bottleneck(1) * 2),
]


# --- DenseNet-121 -----------------------------------------------------------------------------------------
# torchvision densenet121 [tv densenet.py]: conv0 7x7/2 pad 3, pool0 max 3x3/2 pad 1; dense layer = BN-ReLU-
# 1x1-BN-ReLU-3x3 pad 1, its output concatenated to its input; transition = BN-ReLU-1x1-AvgPool 2x2/2;
# block_config (6, 12, 24, 16). Longest path: through every 3x3 of every dense layer; shortest path: the
# concatenation carries a block's input straight to its output, so only stem + transitions remain.
_dl = [(1, 1, 0), (3, 1, 1)]
_tr = [(1, 1, 0), (2, 2, 0)]
TV_DENSENET121 = [
    ("features.conv0", [(7, 2, 3)]),
    ("features.pool0", [(3, 2, 1)]),
    ("features.denseblock1", _dl * 6),
    ("features.transition1", _tr),
    ("features.denseblock2", _dl * 12),
    ("features.transition2", _tr),
    ("features.denseblock3", _dl * 24),
    ("features.transition3", _tr),
    ("features.denseblock4", _dl * 16),  # 2071 / 32, c0 14 (each 2x2 avg-pool moves it by S/2), P 1021
]
TV_DENSENET121_SHORT = [
    ("features.conv0", [(7, 2, 3)]),
    ("features.pool0", [(3, 2, 1)]),
    ("features.denseblock1", []),
    ("features.transition1", _tr),
    ("features.denseblock2", []),
    ("features.transition2", _tr),
    ("features.denseblock3", []),
    ("features.transition3", _tr),
    ("features.denseblock4", []),
]

# --- Inception-v3 -----------------------------------------------------------------------------------------
# torchvision inception_v3 [tv inception.py] and TF-Slim inception_v3 [TF-Slim inception_v3.py] have the
# same per-layer geometry: Conv2d_1a (3x3/2), Conv2d_2a (3x3) and Conv2d_4a (3x3) and every stride-2 layer
# in Mixed_6a/Mixed_7a are VALID (torchvision: padding 0); every stride-1 conv with an odd kernel is SAME,
# i.e. symmetric (torchvision pads (k-1)/2). Nothing depends on the input size (the [RF-table] rows at None,
# 224 and 321 agree), so [Distill]'s numbers apply to torchvision's model at its 299 input.
# Longest path of each block, on ONE axis (both axes are equal: every 1x7 is paired with a 7x1 and every
# 1x3 with a 3x1):
_A = [(1, 1, 0), (3, 1, 1), (3, 1, 1)]  # InceptionA branch3x3dbl (ties with 1x1 -> 5x5 pad 2)
_B = [(1, 1, 0), (3, 1, 1), (3, 2, 0)]  # InceptionB branch3x3dbl: ... 3x3 stride 2 VALID
_C = [(1, 1, 0), (7, 1, 3), (1, 1, 0), (7, 1, 3), (1, 1, 0)]  # InceptionC branch7x7dbl: 7x1,1x7,7x1,1x7 (h axis)
_D = [(1, 1, 0), (1, 1, 0), (7, 1, 3), (3, 2, 0)]  # InceptionD branch7x7x3: 1x1, 1x7, 7x1, 3x3/2 VALID (h)
# InceptionE branch3x3dbl: 1x1, 3x3 pad 1, then [1x3 pad (0,1) || 3x1 pad (1,0)] concatenated: along each
# axis the longer of the two parallel convs has 3 taps.
_E = [(1, 1, 0), (3, 1, 1), (3, 1, 1)]
INCEPTION_V3 = [
    ("Conv2d_1a_3x3", [(3, 2, 0)]),
    ("Conv2d_2a_3x3", [(3, 1, 0)]),
    ("Conv2d_2b_3x3", [(3, 1, 1)]),
    ("maxpool1", [(3, 2, 0)]),
    ("Conv2d_3b_1x1", [(1, 1, 0)]),
    ("Conv2d_4a_3x3", [(3, 1, 0)]),
    ("maxpool2", [(3, 2, 0)]),
    ("Mixed_5b", _A),
    ("Mixed_5c", _A),
    ("Mixed_5d", _A),
    ("Mixed_6a", _B),
    ("Mixed_6b", _C),
    ("Mixed_6c", _C),
    ("Mixed_6d", _C),
    ("Mixed_6e", _C),
    ("Mixed_7a", _D),
    ("Mixed_7b", _E),
    ("Mixed_7c", _E),  # 1311 / 32 / c0 37 / P 618 = [Distill] inception_v3
]
# Shortest path of each block: the 1x1 branch (A, C, E) or the 3x3/2 max-pool branch (B, D).
INCEPTION_V3_SHORT = INCEPTION_V3[:7] + [
    ("Mixed_5b", [(1, 1, 0)]),
    ("Mixed_5c", [(1, 1, 0)]),
    ("Mixed_5d", [(1, 1, 0)]),
    ("Mixed_6a", [(3, 2, 0)]),
    ("Mixed_6b", [(1, 1, 0)]),
    ("Mixed_6c", [(1, 1, 0)]),
    ("Mixed_6d", [(1, 1, 0)]),
    ("Mixed_6e", [(1, 1, 0)]),
    ("Mixed_7a", [(3, 2, 0)]),
    ("Mixed_7b", [(1, 1, 0)]),
    ("Mixed_7c", [(1, 1, 0)]),
]
TV_INCEPTION_TO_SLIM = {"maxpool1": "MaxPool_3a_3x3", "maxpool2": "MaxPool_5a_3x3"}

# --- ConvNeXt-T -------------------------------------------------------------------------------------------
# timm convnext_tiny [timm convnext.py]: 'patch' stem Conv2d(k=4, s=4, p=0); stage 0 has no downsampling,
# stages 1-3 start with LayerNorm2d + Conv2d(k=2, s=2, p=0); a block is 7x7 depthwise (create_conv2d pads
# get_padding(7) = 3) -> LN -> MLP (pointwise) -> layer scale, plus an identity residual; depths (3, 3, 9, 3).
_cnx = [(7, 1, 3)]
CONVNEXT_T = [
    ("stem", [(4, 4, 0)]),
    ("stages.0", _cnx * 3),
    ("stages.1", [(2, 2, 0)] + _cnx * 3),
    ("stages.2", [(2, 2, 0)] + _cnx * 9),
    ("stages.3", [(2, 2, 0)] + _cnx * 3),  # 1688 / 32 / c0 15.5 / P 828
]
CONVNEXT_T_SHORT = [  # residuals skip every block; only the patchify stem and the 2x2 downsamplers remain
    ("stem", [(4, 4, 0)]),
    ("stages.0", []),
    ("stages.1", [(2, 2, 0)]),
    ("stages.2", [(2, 2, 0)]),
    ("stages.3", [(2, 2, 0)]),
]


# --- EfficientNet-B0 --------------------------------------------------------------------------------------
# Tan & Le 2019 Table 1 = timm's _gen_efficientnet arch_def = torchvision's efficientnet_b0 setting:
#   stem 3x3/2; MBConv1 k3 s1 x1; MBConv6 k3 s2 x2; k5 s2 x2; k3 s2 x3; k5 s1 x3; k5 s2 x4; k3 s1 x1; head 1x1.
# Longest path: through every depthwise conv (expansion/projection 1x1s add nothing). Only the first block of
# a stage lacks a skip connection (channels change), so the shortest path keeps the first depthwise conv of
# each stage. Each block has squeeze-and-excitation (global pooling), so from blocks.0 on a unit depends on
# the whole image (rfkit: is_global, size inf) while the conv paths keep the finite local RF.
def effnet_b0(pad3, pad5, short=False):
    def stage(k, s, n):
        p = pad3 if k == 3 else pad5
        return [(1, 1, 0), (k, s, p), (1, 1, 0)] + ([] if short else [(1, 1, 0), (k, 1, p), (1, 1, 0)] * (n - 1))

    return [
        ("stem", [(3, 2, pad3)]),
        ("s1", [(3, 1, pad3), (1, 1, 0)]),  # depthwise-separable: dw 3x3, SE, pw 1x1
        ("s2", stage(3, 2, 2)),
        ("s3", stage(5, 2, 2)),
        ("s4", stage(3, 2, 3)),
        ("s5", stage(5, 1, 3)),
        ("s6", stage(5, 2, 4)),
        ("s7", stage(3, 1, 1)),
        ("head", [(1, 1, 0)]),  # 851 / 32 (timm / torchvision: c0 0, P 425)
    ]


# timm efficientnet_b0 and torchvision efficientnet_b0: PyTorch-style symmetric padding, (k - 1) // 2 for
# stride 1 and stride 2 alike (timm get_padding(k, s) = ((s - 1) + (k - 1)) // 2 = 1 for k 3, 2 for k 5).
EFFNET_B0 = effnet_b0(1, 2)
EFFNET_B0_SHORT = effnet_b0(1, 2, short=True)
# timm tf_efficientnet_b0: the port of the original TensorFlow model, with TF 'SAME' padding, which is
# asymmetric for stride 2 and depends on the map size: on an even map a 3x3/2 pads 0 left (1 right) and a
# 5x5/2 pads 1 left (2 right), moving the centre by +S each time; on an odd map both pad symmetrically.
TF_EFFNET_B0 = effnet_b0(SAME, SAME)
TF_EFFNET_B0_SHORT = effnet_b0(SAME, SAME, short=True)
TIMM_EFFNET_NAMES = {
    "stem": "conv_stem",
    "s1": "blocks.0",
    "s2": "blocks.1",
    "s3": "blocks.2",
    "s4": "blocks.3",
    "s5": "blocks.4",
    "s6": "blocks.5",
    "s7": "blocks.6",
    "head": "conv_head",
}
TV_EFFNET_NAMES = {"stem": "features.0", **{f"s{i}": f"features.{i}" for i in range(1, 8)}, "head": "features.8"}


def renamed(segments, names):
    return [(names[n], layers) for n, layers in segments]


# --- the models under test --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    spec: str
    input_size: tuple[int, int]
    longest: list
    shortest: list | None = None  # None: single path (size_min == size)
    global_from: str | None = None  # first end-point with a global op (SE) on some path to it


CASES = {
    "tv-resnet18": Case("torchvision:resnet18", (224, 224), TV_RESNET18, TV_RESNET18_SHORT),
    "tv-resnet50": Case("torchvision:resnet50", (224, 224), TV_RESNET50, TV_RESNET50_SHORT),
    "timm-resnet50": Case("resnet50", (224, 224), TV_RESNET50, TV_RESNET50_SHORT),  # timm's is V1.5 too
    "tv-vgg16": Case("torchvision:vgg16", (224, 224), TV_VGG16),
    "tv-alexnet": Case("torchvision:alexnet", (224, 224), TV_ALEXNET),
    "tv-densenet121": Case("torchvision:densenet121", (224, 224), TV_DENSENET121, TV_DENSENET121_SHORT),
    "tv-inception_v3": Case("torchvision:inception_v3", (299, 299), INCEPTION_V3, INCEPTION_V3_SHORT),
    "timm-convnext_tiny": Case("convnext_tiny", (224, 224), CONVNEXT_T, CONVNEXT_T_SHORT),
    "timm-efficientnet_b0": Case(
        "efficientnet_b0",
        (224, 224),
        renamed(EFFNET_B0, TIMM_EFFNET_NAMES),
        renamed(EFFNET_B0_SHORT, TIMM_EFFNET_NAMES),
        global_from="blocks.0",
    ),
    "tv-efficientnet_b0": Case(
        "torchvision:efficientnet_b0",
        (224, 224),
        renamed(EFFNET_B0, TV_EFFNET_NAMES),
        renamed(EFFNET_B0_SHORT, TV_EFFNET_NAMES),
        global_from="features.1",
    ),
    # non-square input: h = 224 (even maps: SAME shifts the centre), w = 225 (odd maps: it does not)
    "timm-tf_efficientnet_b0": Case(
        "tf_efficientnet_b0",
        (224, 225),
        renamed(TF_EFFNET_B0, TIMM_EFFNET_NAMES),
        renamed(TF_EFFNET_B0_SHORT, TIMM_EFFNET_NAMES),
        global_from="blocks.0",
    ),
}


@cache
def traced(spec: str, input_size: tuple[int, int]) -> rfkit.RFGraph:
    return rfkit.trace(spec, input_size=input_size)


def expected(case: Case) -> dict[str, dict]:
    """Per end-point: per-axis size, size_min, stride, center, padding from the hand derivation."""
    per_axis_long = [derive(case.longest, n) for n in case.input_size]
    per_axis_short = [derive(case.shortest or case.longest, n) for n in case.input_size]
    out = {}
    for name in per_axis_long[0]:
        longs = [a[name] for a in per_axis_long]
        out[name] = dict(
            size=tuple(d.size for d in longs),
            size_min=tuple(a[name].size for a in per_axis_short),
            stride=tuple(d.stride for d in longs),
            center=tuple(d.center for d in longs),
            padding=tuple(d.padding for d in longs),
        )
    return out


def _node_params():
    for cid, case in CASES.items():
        names = [n for n, _ in case.longest]
        for i, name in enumerate(names):
            is_global = case.global_from is not None and i >= names.index(case.global_from)
            yield pytest.param(cid, name, is_global, id=f"{cid}-{name}")


# --- 1. the hand derivation reproduces the published tables -----------------------------------------------
# [RF-table] rows at resolution 224: (r, S, P).
PUBLISHED = {
    "alexnet_v2": (
        SLIM_ALEXNET_V2,
        {
            "conv1": (11, 4, 0),
            "pool1": (19, 8, 0),
            "conv2": (51, 8, 16),
            "conv3": (99, 16, 32),
            "conv4": (131, 16, 48),
            "conv5": (163, 16, 64),
            "pool5": (195, 32, 64),
        },
    ),
    "vgg_16": (
        [(TV_VGG16_TO_SLIM.get(n, n), ls) for n, ls in TV_VGG16],
        {
            "conv1/conv1_1": (3, 1, 1),
            "pool1": (6, 2, 2),
            "conv2/conv2_1": (10, 2, 4),
            "pool2": (16, 4, 6),
            "conv3/conv3_1": (24, 4, 10),
            "conv3/conv3_2": (32, 4, 14),
            "pool3": (44, 8, 18),
            "conv4/conv4_1": (60, 8, 26),
            "conv4/conv4_2": (76, 8, 34),
            "pool4": (100, 16, 42),
            "conv5/conv5_1": (132, 16, 58),
            "conv5/conv5_2": (164, 16, 74),
            "pool5": (212, 32, 90),
        },
    ),
    "resnet_v1_50": (
        SLIM_RESNET_V1_50,
        {"block1": (35, 8, 15), "block2": (99, 16, 47), "block3": (291, 32, 143), "block4": (483, 32, 239)},
    ),
    "inception_v3": (
        [(TV_INCEPTION_TO_SLIM.get(n, n), ls) for n, ls in INCEPTION_V3],
        {
            "Conv2d_1a_3x3": (3, 2, 0),
            "Conv2d_2a_3x3": (7, 2, 0),
            "Conv2d_2b_3x3": (11, 2, 2),
            "MaxPool_3a_3x3": (15, 4, 2),
            "Conv2d_3b_1x1": (15, 4, 2),
            "Conv2d_4a_3x3": (23, 4, 2),
            "MaxPool_5a_3x3": (31, 8, 2),
            "Mixed_5b": (63, 8, 18),
            "Mixed_5c": (95, 8, 34),
            "Mixed_5d": (127, 8, 50),
            "Mixed_6a": (159, 16, 58),
            "Mixed_6b": (351, 16, 154),
            "Mixed_6c": (543, 16, 250),
            "Mixed_6d": (735, 16, 346),
            "Mixed_6e": (927, 16, 442),
            "Mixed_7a": (1055, 32, 490),
            "Mixed_7b": (1183, 32, 554),
            "Mixed_7c": (1311, 32, 618),
        },
    ),
}


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_hand_derivation_reproduces_published_table(model):
    segments, table = PUBLISHED[model]
    got = derive(segments, 224)
    for end_point, (r, s, p) in table.items():
        d = got[end_point]
        assert (d.size, d.stride, d.padding) == (r, s, p), end_point


# --- 2. rfkit against the published numbers where the geometry is the same --------------------------------
def _check_published(g, node, r, s, p):
    info = g[node]
    assert info.size == (r, r), node
    assert info.stride == (s, s), node
    assert info.padding == (p, p), node
    assert info.center == ((r - 1) / 2 - p,) * 2, node


@pytest.mark.parametrize("node", [n for n, _ in TV_VGG16 if n in TV_VGG16_TO_SLIM])
def test_torchvision_vgg16_matches_distill_vgg_16(node):
    _check_published(traced("torchvision:vgg16", (224, 224)), node, *PUBLISHED["vgg_16"][1][TV_VGG16_TO_SLIM[node]])


@pytest.mark.parametrize("node", [n for n, _ in INCEPTION_V3])
def test_torchvision_inception_v3_matches_distill_inception_v3(node):
    # at torchvision's own 299 input; [RF-table]'s values do not depend on the input size (see above)
    table = PUBLISHED["inception_v3"][1]
    _check_published(traced("torchvision:inception_v3", (299, 299)), node, *table[TV_INCEPTION_TO_SLIM.get(node, node)])


@pytest.mark.parametrize("node", sorted(TV_ALEXNET_TO_SLIM))
def test_torchvision_alexnet_vs_distill_alexnet_v2(node):
    # Same kernels and strides as alexnet_v2, so the same r and S (pool5: 195 / 32, [Distill]); but torchvision's
    # conv1 has padding 2 where alexnet_v2's is VALID, so P is 2 larger everywhere (pool5: 66 vs [Distill]'s 64).
    r, s, p = PUBLISHED["alexnet_v2"][1][TV_ALEXNET_TO_SLIM[node]]
    _check_published(traced("torchvision:alexnet", (224, 224)), node, r, s, p + 2)


def test_torchvision_resnet50_is_v1_5_not_distill_resnet_v1_50():
    # [Distill]'s 483 / 32 / 239 is TF-Slim resnet_v1_50 (stride in the last unit of each block); torchvision's
    # ResNet-50 is V1.5 (stride in the 3x3 of the first unit), whose layer4 RF is 427 by the derivation above.
    assert derive(SLIM_RESNET_V1_50, 224)["block4"].size == 483
    info = traced("torchvision:resnet50", (224, 224))["layer4"]
    assert info.size == (427, 427)
    assert info.stride == (32, 32)
    assert info.center == (0, 0)
    assert info.padding == (213, 213)


# --- 3. rfkit against the hand derivation, every model and end-point --------------------------------------
@pytest.mark.parametrize("cid, node, is_global", list(_node_params()))
def test_rf_matches_hand_derivation(cid, node, is_global):
    case = CASES[cid]
    exp = expected(case)[node]
    g = traced(case.spec, case.input_size)
    info = g[node]
    assert not info.unknown, f"{case.spec} {node}: unknown RF; ops without an RF rule: {g.unsupported}"
    assert not info.misaligned
    assert info.is_global == is_global
    if is_global:
        assert info.size == (math.inf, math.inf)
    else:
        assert info.size == exp["size"]
    assert info.local_size == exp["size"]
    assert info.size_min == exp["size_min"]
    assert info.stride == exp["stride"]
    assert info.center == exp["center"]
    assert info.padding == exp["padding"]


# Spot values of the derivations, spelled out so that a reader sees the numbers the tests above use.
@pytest.mark.parametrize(
    "segments, node, n, r, s, c",
    [
        (TV_RESNET18, "layer4", 224, 435, 32, 0),
        (TV_RESNET50, "layer4", 224, 427, 32, 0),
        (CAFFE_RESNET50_V1, "conv5_x", 224, 483, 32, 0),  # paper's v1: same r as TF-Slim's
        (TV_VGG16, "features.28", 224, 196, 16, Fraction(15, 2)),  # conv5_3
        (TV_VGG16, "features.30", 224, 212, 32, Fraction(31, 2)),  # pool5
        (TV_ALEXNET, "features.12", 224, 195, 32, 31),  # pool5
        (TV_DENSENET121, "features.denseblock4", 224, 2071, 32, 14),
        (INCEPTION_V3, "Mixed_7c", 299, 1311, 32, 37),
        (CONVNEXT_T, "stages.3", 224, 1688, 32, Fraction(31, 2)),
        (EFFNET_B0, "head", 224, 851, 32, 0),
        (TF_EFFNET_B0, "head", 224, 851, 32, 31),  # even maps: SAME shifts c0 by 1+2+4+8+16
        (TF_EFFNET_B0, "head", 225, 851, 32, 0),  # odd maps: symmetric SAME
    ],
)
def test_derivation_spot_values(segments, node, n, r, s, c):
    d = derive(segments, n)[node]
    assert (d.size, d.stride, d.center) == (r, s, c)
