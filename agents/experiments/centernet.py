"""A small CenterNet-style detector (Zhou et al., "Objects as Points", 2019) for CPU training.

Per class a center heatmap at stride 4, a box-size head and an offset head; targets are
Gaussians around the box centres (CenterNet's radius for IoU 0.7), the heatmap loss is
the penalty-reduced focal loss, the size and offset losses are L1 at the centres;
decoding keeps 3x3 local maxima (max-pool NMS) and the top-K scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 4
SIZE_WEIGHT = 0.1
OFFSET_WEIGHT = 1.0


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def head(cin: int, cout: int, bias: float = 0.0) -> nn.Sequential:
    """3x3 convolution + ReLU + 1x1 output convolution (CenterNet's heads)."""
    out = nn.Conv2d(32, cout, 1)
    nn.init.constant_(out.bias, bias)
    return nn.Sequential(nn.Conv2d(cin, 32, 3, padding=1), nn.ReLU(inplace=True), out)


class CenterNet(nn.Module):
    """Stride-16 encoder, upsampled with skips to stride 4; heatmap, size and offset heads."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.s4 = nn.Sequential(conv(3, w // 2, 2), conv(w // 2, w, 2), conv(w, w))
        self.s8 = nn.Sequential(conv(w, 2 * w, 2), conv(2 * w, 2 * w))
        self.s16 = nn.Sequential(conv(2 * w, 4 * w, 2), conv(4 * w, 4 * w))
        self.lat16 = nn.Conv2d(4 * w, 2 * w, 1)
        self.fuse8 = conv(2 * w, 2 * w)
        self.lat8 = nn.Conv2d(2 * w, w, 1)
        self.fuse4 = conv(w, 2 * w)
        # The focal loss expects a low prior: sigmoid(-2.19) = 0.1, as in CenterNet.
        self.heatmap = head(2 * w, num_classes, bias=-2.19)
        self.size = head(2 * w, 2)
        self.offset = head(2 * w, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c4 = self.s4(x)
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        p8 = self.fuse8(c8 + F.interpolate(self.lat16(c16), size=c8.shape[-2:], mode="nearest"))
        p4 = self.fuse4(c4 + F.interpolate(self.lat8(p8), size=c4.shape[-2:], mode="nearest"))
        return {"heatmap": self.heatmap(p4), "size": self.size(p4), "offset": self.offset(p4)}


class Residual(nn.Module):
    """Two 3x3 convolutions with batch norm around an identity shortcut (ResNet's basic block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = conv(channels, channels)
        self.second = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.second(self.first(x)))


class ResidualCenterNet(nn.Module):
    """Residual encoder to stride 32 (context for the whole 160x128 frame), a feature
    pyramid back to stride 4 and one 3x3 trunk shared by the 1x1 heatmap, size and offset
    outputs. Per CPU-second it learns faster than :class:`CenterNet` (docs/detection.md),
    whose three 3x3 heads at stride 4 cost more than its encoder."""

    def __init__(
        self,
        num_classes: int,
        width: int = 32,
        blocks: tuple[int, ...] = (1, 2, 2, 1),
        features: int = 32,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        channels = [width, 2 * width, 4 * width, 6 * width]
        self.stem = nn.Sequential(conv(3, width // 2, 2), conv(width // 2, width, 2))
        stages = []
        for i, (cout, count) in enumerate(zip(channels, blocks, strict=True)):
            down = [] if i == 0 else [conv(channels[i - 1], cout, 2)]
            stages.append(nn.Sequential(*down, *(Residual(cout) for _ in range(count))))
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(nn.Conv2d(c, features, 1) for c in channels)
        self.fuse = nn.ModuleList(conv(features, features) for _ in channels[:-1])
        self.trunk = conv(features, features)
        self.heatmap = nn.Conv2d(features, num_classes, 1)
        nn.init.constant_(self.heatmap.bias, -2.19)  # sigmoid prior 0.1, as in CenterNet
        self.size = nn.Conv2d(features, 2, 1)
        self.offset = nn.Conv2d(features, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        levels = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        p = self.lateral[-1](levels[-1])
        for i in range(len(levels) - 2, -1, -1):
            up = F.interpolate(p, size=levels[i].shape[-2:], mode="nearest")
            p = self.fuse[i](self.lateral[i](levels[i]) + up)
        t = self.trunk(p)
        return {"heatmap": self.heatmap(t), "size": self.size(t), "offset": self.offset(t)}


def to_input(obs: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 frames -> (N, 3, H, W) float in [-0.5, 0.5]."""
    return obs.permute(0, 3, 1, 2).float().div(255.0).sub(0.5).contiguous()


# -- targets ---------------------------------------------------------------------------------
def gaussian_radius(
    height: float | np.ndarray, width: float | np.ndarray, min_overlap: float = 0.7
) -> float | np.ndarray:
    """CenterNet's radius: corners moved by it keep IoU >= ``min_overlap`` (its exact
    formula); ``height`` and ``width`` are numbers or arrays of them."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


@dataclass
class Targets:
    """Dense training targets for a batch at the output resolution."""

    heatmap: torch.Tensor  # (N, K, h, w) in [0, 1], exactly 1 at the centres
    size: torch.Tensor  # (N, 2, h, w) box width, height in output cells, at the centres
    offset: torch.Tensor  # (N, 2, h, w) sub-cell offset of the centre, at the centres
    mask: torch.Tensor  # (N, h, w) 1 at the centres


def image_targets(
    boxes: np.ndarray, classes: np.ndarray, num_classes: int, out_hw: tuple[int, int]
) -> tuple[np.ndarray, ...]:
    """Targets of one image; ``boxes`` ``(M, 4)`` as ``[x0, y0, x1, y1]`` in input pixels."""
    heat, size, offset, mask = _targets([(boxes, classes)], num_classes, out_hw)
    return heat[0], size[0], offset[0], mask[0]


def batch_targets(
    annotations: list[tuple[np.ndarray, np.ndarray]], num_classes: int, out_hw: tuple[int, int]
) -> Targets:
    """Stacked :func:`image_targets` of ``(boxes, classes)`` per image."""
    heat, size, offset, mask = _targets(annotations, num_classes, out_hw)
    return Targets(*(torch.as_tensor(a) for a in (heat, size, offset, mask)))


def _targets(
    annotations: list[tuple[np.ndarray, np.ndarray]], num_classes: int, out_hw: tuple[int, int]
) -> tuple[np.ndarray, ...]:
    """Every image's targets at once, with no loop over objects.

    Per box (in output cells; boxes with no width or height are skipped): a Gaussian of
    sigma ``(2r + 1) / 6`` around its centre cell, ``r`` = :func:`gaussian_radius`, maxed
    into its class's heatmap; width, height and sub-cell offset at the centre cell (the
    last box wins a cell two centres share).
    """
    h, w = out_hw
    n = len(annotations)
    heat = np.zeros((n, num_classes, h, w), np.float32)
    size = np.zeros((n, 2, h, w), np.float32)
    offset = np.zeros((n, 2, h, w), np.float32)
    mask = np.zeros((n, h, w), np.float32)
    counts = [len(np.asarray(c).reshape(-1)) for _, c in annotations]
    if not sum(counts):
        return heat, size, offset, mask
    boxes = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for b, _ in annotations])
    boxes = boxes / STRIDE
    classes = np.concatenate([np.asarray(c).reshape(-1) for _, c in annotations]).astype(int)
    image = np.repeat(np.arange(n), counts)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (bw > 0) & (bh > 0)
    boxes, classes, image, bw, bh = boxes[keep], classes[keep], image[keep], bw[keep], bh[keep]
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    cx = np.clip(centre_x, 0, w - 1).astype(int)
    cy = np.clip(centre_y, 0, h - 1).astype(int)
    radius = np.maximum(0, np.trunc(gaussian_radius(np.ceil(bh), np.ceil(bw)))).astype(int)
    _max_gaussians(heat, image, classes, cx, cy, radius)
    # Sizes and offsets: the last box of each (image, cell) wins.
    cell = (image * h + cy) * w + cx
    _, from_end = np.unique(cell[::-1], return_index=True)
    last = len(cell) - 1 - from_end
    i, y, x = image[last], cy[last], cx[last]
    size[i, 0, y, x], size[i, 1, y, x] = bw[last], bh[last]
    offset[i, 0, y, x], offset[i, 1, y, x] = centre_x[last] - x, centre_y[last] - y
    mask[i, y, x] = 1.0
    return heat, size, offset, mask


def _max_gaussians(
    heat: np.ndarray,
    image: np.ndarray,
    classes: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    radius: np.ndarray,
) -> None:
    """Max each box's Gaussian (peak 1 at its centre cell, cut at ``radius`` and at the
    map's edges) into ``heat[image, class]``: every cell of every box in one array."""
    h, w = heat.shape[-2:]
    left, right = np.minimum(cx, radius), np.minimum(w - cx, radius + 1)
    top, bottom = np.minimum(cy, radius), np.minimum(h - cy, radius + 1)
    columns, cells = left + right, (top + bottom) * (left + right)
    box = np.repeat(np.arange(len(radius)), cells)
    index = np.arange(int(cells.sum())) - np.repeat(np.cumsum(cells) - cells, cells)
    dy = index // columns[box] - top[box]
    dx = index % columns[box] - left[box]
    sigma = (2 * radius[box] + 1) / 6
    values = np.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)).astype(np.float32)
    np.maximum.at(heat, (image[box], classes[box], cy[box] + dy, cx[box] + dx), values)


# -- losses ----------------------------------------------------------------------------------
def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4).

    Returns the loss normalized by the number of centres, and per class the loss of
    its channel normalized by its own centres (NaN for classes without centres).
    """
    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = torch.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = torch.log(1 - pred) * pred**2 * (1 - target) ** 4 * (1 - pos)
    per_class_sum = -(pos_loss + neg_loss).sum(dim=(0, 2, 3))
    per_class_pos = pos.sum(dim=(0, 2, 3))
    total = per_class_sum.sum() / per_class_pos.sum().clamp(min=1.0)
    per_class = torch.where(
        per_class_pos > 0, per_class_sum / per_class_pos.clamp(min=1.0), torch.nan
    )
    return total, per_class.detach()


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 between ``(N, 2, h, w)`` maps at the centres, averaged over centres."""
    m = mask.unsqueeze(1)
    return (torch.abs(pred - target) * m).sum() / m.sum().clamp(min=1.0)


def detection_loss(
    out: dict[str, torch.Tensor], targets: Targets
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """Focal heatmap loss + 0.1 x L1 size loss + 1 x L1 offset loss; parts and per-class."""
    heat, per_class = focal_loss(out["heatmap"], targets.heatmap)
    size = masked_l1(out["size"], targets.size, targets.mask)
    offset = masked_l1(out["offset"], targets.offset, targets.mask)
    total = heat + SIZE_WEIGHT * size + OFFSET_WEIGHT * offset
    named = (("heatmap", heat), ("size", size), ("offset", offset))
    parts = {k: float(v.detach()) for k, v in named}
    return total, parts, per_class


# -- decoding --------------------------------------------------------------------------------
def decode(
    out: dict[str, torch.Tensor], top_k: int = 100
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image ``(boxes (k, 4) [x0, y0, x1, y1] in input pixels, scores, classes)``.

    Peaks are the 3x3 local maxima of the sigmoid heatmap (max-pool NMS); the ``top_k``
    highest over all classes are kept.
    """
    heat = torch.sigmoid(out["heatmap"])
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).float()
    n, k, h, w = heat.shape
    scores, index = peaks.reshape(n, -1).topk(min(top_k, k * h * w))
    classes = index // (h * w)
    cell = index % (h * w)
    ys, xs = (cell // w).float(), (cell % w).float()
    results = []
    for i in range(n):
        size = out["size"][i].reshape(2, -1)[:, cell[i]]
        offset = out["offset"][i].reshape(2, -1)[:, cell[i]]
        cx, cy = xs[i] + offset[0], ys[i] + offset[1]
        bw, bh = size[0].clamp(min=0), size[1].clamp(min=0)
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * STRIDE
        results.append((boxes.numpy(), scores[i].numpy(), classes[i].numpy()))
    return results
