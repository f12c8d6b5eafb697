"""Unimodal encoders: a small CNN for the 1x48x64 image and a Conv1d stack for the log-mel.

Both return a token sequence (for cross-modal attention) and a pooled feature
vector (for concatenation and unimodal heads), so every fusion head in
`avfuse.models.fusion` is built from the same two encoders.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv2d(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ImageEncoder(nn.Module):
    """CNN over a [B, C, H, W] image: three conv blocks with 2x2 pooling.

    For 48x64 input the token grid is 6x8 = 48 tokens of `dim` channels.
    """

    def __init__(self, *, in_channels: int = 1, width: int = 16, dim: int = 64) -> None:
        super().__init__()
        self.dim = dim
        self.body = nn.Sequential(
            _conv2d(in_channels, width),
            nn.MaxPool2d(2),
            _conv2d(width, width * 2),
            nn.MaxPool2d(2),
            _conv2d(width * 2, dim),
            nn.MaxPool2d(2),
            _conv2d(dim, dim),
        )

    def tokens(self, image: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, N, dim] tokens of the feature grid (row-major)."""
        f = self.body(image)
        return f.flatten(2).transpose(1, 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, dim] pooled feature."""
        return self.tokens(image).mean(dim=1)


def _conv1d(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(cin, cout, kernel_size=5, stride=stride, padding=2, bias=False),
        nn.BatchNorm1d(cout),
        nn.ReLU(inplace=True),
    )


class AudioEncoder(nn.Module):
    """Conv1d over time with the mel bands as channels: [B, n_mels, T] -> tokens.

    Three strided blocks shorten 97 frames to 13 tokens of `dim` channels; a
    temporal mean plus max pool gives the feature vector (max keeps a short
    spoken digit from being washed out by surrounding noise).
    """

    def __init__(self, *, n_mels: int = 64, width: int = 64, dim: int = 64) -> None:
        super().__init__()
        self.dim = dim
        self.body = nn.Sequential(
            _conv1d(n_mels, width, 1),
            _conv1d(width, width, 2),
            _conv1d(width, dim, 2),
            _conv1d(dim, dim, 2),
        )
        self.proj = nn.Linear(2 * dim, dim)

    def tokens(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, T] -> [B, T', dim]."""
        return self.body(audio).transpose(1, 2)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, T', dim] -> [B, dim] (mean and max over time, projected)."""
        return self.proj(torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=1))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, T] -> [B, dim] pooled feature."""
        return self.pool(self.tokens(audio))
