import torch.nn as nn


def build():
    """conv 3x3 s2 p1 -> ReLU -> conv 3x3 p1, unit weights and bias 100 (the ReLU never clips)."""
    net = nn.Sequential(nn.Conv2d(3, 2, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.ones_(m.weight)
            nn.init.constant_(m.bias, 100.0)
    return net
