"""PyTorch definitions of the SWA paper's CIFAR networks, written from the structure of the SWA
reference code (timgaripov/swa: models/preresnet.py, models/vgg.py, models/wide_resnet.py) with its
module and parameter names, so their state_dicts are the reference code's. Used only to make the
tests' golden fixtures and to count the full-size networks' parameters; CudaSwa's own builders
are never consulted here.

Where these differ from the reference code, on purpose and only for the fixtures:
  - PreResNet takes the block kind as an argument (the reference picks bottleneck blocks for every
    depth of 44 and more), so a one-block-per-stage network of either kind can be built;
  - VGG's widths scale with `width` (64 in the reference) and its dropout probability is an
    argument (0.5 in the reference; a fixture needs 0, as masks cannot agree across libraries);
  - WideResNet's final BN uses PyTorch's default momentum 0.1 (the reference sets 0.9), as CudaSwa
    does everywhere;
  - the initialisations are left to the caller (a fixture draws every weight at random).
"""
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- PreResNet (models/preresnet.py)

class PreActBasic(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, 1, 0, bias=False)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        # The projection (where there is one) reads the block's raw input, not its BN-ReLU.
        return out + (x if self.downsample is None else self.downsample(x))


class PreResNet(nn.Module):
    """conv1; three stages of n blocks (16, 32, 64 planes; stride 2 entering stages 2 and 3); bn; relu; avgpool; fc."""

    def __init__(self, depth, bottleneck, num_classes=10):
        super().__init__()
        block = PreActBottleneck if bottleneck else PreActBasic
        per_block = 9 if bottleneck else 6
        assert (depth - 2) % per_block == 0, f"depth should be {per_block}n+2"
        n = (depth - 2) // per_block
        self.inplanes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.layer1 = self._stage(block, 16, n, 1)
        self.layer2 = self._stage(block, 32, n, 2)
        self.layer3 = self._stage(block, 64, n, 2)
        self.bn = nn.BatchNorm2d(64 * block.expansion)
        self.fc = nn.Linear(64 * block.expansion, num_classes)

    def _stage(self, block, planes, blocks, stride):
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride, 0, bias=False))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        layers += [block(self.inplanes, planes, 1, None) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = F.relu(self.bn(x))
        return self.fc(F.avg_pool2d(x, x.shape[-1]).flatten(1))


# ---------------------------------------------------------------- VGG (models/vgg.py)

class ReLU(nn.Module):
    """nn.ReLU through this module's F (so a fixture maker can watch its inputs); no parameters, same state_dict."""

    def forward(self, x):
        return F.relu(x)


VGG16 = [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"]  # in units of the first width


class VGG(nn.Module):
    """features: 3x3 convolutions with bias (+BN), ReLU, 2x2 max pools; classifier: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear."""

    def __init__(self, batch_norm, num_classes=10, width=64, dropout=0.5):
        super().__init__()
        layers, channels = [], 3
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(channels, v * width, 3, 1, 1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v * width))
            layers.append(ReLU())
            channels = v * width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(8 * width, 8 * width), ReLU(),
            nn.Dropout(dropout), nn.Linear(8 * width, 8 * width), ReLU(),
            nn.Linear(8 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


# ---------------------------------------------------------------- WideResNet (models/wide_resnet.py)

class WideBasic(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, 1, 1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=True)  # the stride sits on the second conv
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, 0, bias=True))

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    """conv1 (16, bias); three stages of n wide blocks (16k, 32k, 64k); bn1; relu; avgpool; linear. Depth 6n+4."""

    def __init__(self, depth, widen, num_classes=10):
        super().__init__()
        assert (depth - 4) % 6 == 0, "depth should be 6n+4"
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=True)
        planes, layers = 16, []
        for stage, width in enumerate([16 * widen, 32 * widen, 64 * widen]):
            blocks = []
            for b in range(n):
                blocks.append(WideBasic(planes, width, 2 if stage > 0 and b == 0 else 1))
                planes = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn1 = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = F.relu(self.bn1(x))
        return self.linear(F.avg_pool2d(x, x.shape[-1]).flatten(1))


# The full-size networks of the paper, for parameter counts.
FULL_SIZE = {
    "preresnet110": lambda c: PreResNet(110, bottleneck=True, num_classes=c),   # the reference: bottleneck from depth 44
    "preresnet164": lambda c: PreResNet(164, bottleneck=True, num_classes=c),
    "vgg16": lambda c: VGG(False, c),
    "vgg16bn": lambda c: VGG(True, c),
    "wrn28x10": lambda c: WideResNet(28, 10, c),
}
