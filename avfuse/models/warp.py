"""Training-time warps for voices and writers the model never saw, on feature batches.

The data set's espeak-ng voices and drawn digits are few next to the voices and hands a
deployed model meets. These warps widen each batch where speakers and writers differ:

    audio (normalised log-mel [B, n_mels, T])
        vocal-tract length   the spectrum scaled in Hz by a factor (formants move), done
                             exactly on the mel axis: output band f reads input at f/alpha
        tempo                the time axis stretched about a random frame (speaking rate)
        EQ                   a smooth random curve over the bands (microphone, room)
    image (normalised gray [B, 1, H, W])
        affine               rotation, zoom and slant (shear) about the centre
        pen width            a blend towards a 3x3 thicker or thinner ink
        focus                a Gaussian blur

Each warp draws from the caller's `torch.Generator`, so a seed fixes every batch, and
only a `p_*_warp` share of the samples is warped (the rest stay as generated).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from avfuse.kernels.reference import AudioParams
from avfuse.models.augment import AugmentConfig

__all__ = ["audio_warp", "image_warp", "mel_source_index"]


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_source_index(alpha: torch.Tensor, params: AudioParams) -> torch.Tensor:
    """Fractional input band each output band reads when frequencies scale by ``alpha``.

    Band centres are uniform in mel (HTK formula, as `avfuse.kernels.reference`); a
    spectrum scaled by alpha has at frequency f what the input had at f / alpha.

    Args:
        alpha: [B] warp factors.

    Returns:
        [B, n_mels] fractional band indices, clamped to the valid range.
    """
    lo = _hz_to_mel(torch.tensor(float(params.fmin)))
    hi = _hz_to_mel(torch.tensor(float(params.fmax)))
    step = (hi - lo) / (params.n_mels + 1)
    centres = lo + step * torch.arange(1, params.n_mels + 1)
    src_hz = _mel_to_hz(centres)[None, :] / alpha[:, None]
    idx = (_hz_to_mel(src_hz) - lo) / step - 1.0
    return idx.clamp(0.0, params.n_mels - 1.0)


def _gather_lerp(x: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``dim`` at fractional ``idx`` (same shape)."""
    i0 = idx.floor().long()
    i1 = (i0 + 1).clamp(max=x.shape[dim] - 1)
    w = (idx - i0).to(x.dtype)
    return x.gather(dim, i0) * (1 - w) + x.gather(dim, i1) * w


def audio_warp(
    audio: torch.Tensor,
    cfg: AugmentConfig,
    gen: torch.Generator,
    params: AudioParams | None = None,
) -> torch.Tensor:
    """Vocal-tract length, tempo and EQ warps of [B, n_mels, T] log-mel (see module)."""
    if cfg.p_audio_warp <= 0:
        return audio
    params = params or AudioParams()
    b, f, t = audio.shape
    on = torch.rand(b, generator=gen) < cfg.p_audio_warp
    out = audio
    if cfg.vtl_warp > 0:
        alpha = torch.exp(_uniform(b, -1, 1, gen) * math.log1p(cfg.vtl_warp))
        alpha = torch.where(on, alpha, torch.ones_like(alpha))
        idx = mel_source_index(alpha, params)[:, :, None].expand(b, f, t)
        out = _gather_lerp(out, idx, 1)
    if cfg.tempo > 1:
        beta = torch.exp(_uniform(b, -1, 1, gen) * math.log(cfg.tempo))
        beta = torch.where(on, beta, torch.ones_like(beta))
        centre = _uniform(b, 0, t - 1, gen)
        frames = torch.arange(t, dtype=audio.dtype)
        idx = centre[:, None] + (frames[None, :] - centre[:, None]) / beta[:, None]
        idx = idx.clamp(0.0, t - 1.0)[:, None, :].expand(b, f, t)
        out = _gather_lerp(out, idx, 2)
    if cfg.eq > 0:
        bands = torch.arange(f, dtype=audio.dtype) / max(f - 1, 1)
        curve = torch.zeros(b, f)
        for k in (1, 2, 3):
            amp = torch.randn(b, 1, generator=gen) * cfg.eq
            phase = _uniform(b, 0, 2 * math.pi, gen)[:, None]
            curve = curve + amp * torch.cos(math.pi * k * bands[None, :] + phase)
        out = out + curve[:, :, None]
    return torch.where(on[:, None, None], out, audio)  # the rest exactly as generated


def _blur(image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian blur of [B, C, H, W] with [B] sigmas (0: unchanged)."""
    b, c, h, w = image.shape
    r = 2
    x = torch.arange(-r, r + 1, dtype=image.dtype)
    s = sigma.clamp(min=1e-3)[:, None]
    k1 = torch.exp(-(x[None, :] ** 2) / (2 * s**2))
    k1 = k1 / k1.sum(dim=1, keepdim=True)
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, 0)[:, None]
    padded = F.pad(image.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    return F.conv2d(padded, k2, groups=b * c).reshape(b, c, h, w)


def image_warp(image: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Rotation, zoom, slant, pen width and focus of [B, C, H, W] images (see module)."""
    if cfg.p_image_warp <= 0:
        return image
    b, _, h, w = image.shape
    on = (torch.rand(b, generator=gen) < cfg.p_image_warp).to(image.dtype)
    rot = torch.deg2rad(_uniform(b, -cfg.rotate, cfg.rotate, gen)) * on
    zoom = 1 + _uniform(b, -cfg.scale, cfg.scale, gen) * on
    shear = _uniform(b, -cfg.shear, cfg.shear, gen) * on
    cos, sin = torch.cos(rot), torch.sin(rot)
    # output pixel (x, y) about the centre reads input at A^-1 (x, y); in pixels, then
    # to the normalised coordinates affine_grid takes (x spans w/2, y spans h/2)
    a11, a12 = cos / zoom, (-sin + shear * cos) / zoom
    a21, a22 = sin / zoom, (cos + shear * sin) / zoom
    theta = torch.zeros(b, 2, 3, dtype=image.dtype)
    theta[:, 0, 0], theta[:, 0, 1] = a11, a12 * (h / w)
    theta[:, 1, 0], theta[:, 1, 1] = a21 * (w / h), a22
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.stroke > 0:
        thick = -F.max_pool2d(-out, 3, stride=1, padding=1)  # dark ink spreads
        thin = F.max_pool2d(out, 3, stride=1, padding=1)
        lam = _uniform(b, -cfg.stroke, cfg.stroke, gen) * on
        lam = lam[:, None, None, None]
        out = torch.where(lam > 0, out + lam * (thick - out), out - lam * (thin - out))
    if cfg.blur > 0:
        sigma = _uniform(b, 0, cfg.blur, gen) * on
        out = torch.where((sigma > 0.2)[:, None, None, None], _blur(out, sigma), out)
    return torch.where(on[:, None, None, None] > 0, out, image)
