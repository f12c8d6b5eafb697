"""Training-time augmentation on feature batches: SpecAugment, light image jitter, modality dropout.

All of it works on normalised feature tensors inside the training loop (never
on the cached features), draws from a caller-owned `torch.Generator` so a seed
fixes every mask, and is off at evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Augmentation strengths.

    Attributes:
        p_audio_missing: probability a training sample loses its audio (zeroed, mask 0).
        p_video_missing: probability a training sample loses its image (never both).
        time_masks: SpecAugment time masks per sample.
        time_width: maximum frames per time mask.
        freq_masks: SpecAugment frequency masks per sample.
        freq_width: maximum mel bands per frequency mask.
        shift: maximum image translation in pixels (both axes).
        contrast: maximum relative contrast/brightness jitter of the image.
        noise: std of Gaussian noise added to the normalised image.
        vtl_warp: largest relative frequency warp of the log-mel (vocal-tract length:
            formants move by up to this factor either way; `avfuse.models.warp`).
        tempo: largest tempo factor of the log-mel's time axis (1.25: 0.8x to 1.25x).
        eq: std of a smooth random EQ curve added to the normalised log-mel (~dB / 22).
        p_audio_warp: share of training samples that get the three audio warps.
        rotate: largest in-plane rotation of the image (degrees).
        scale: largest relative zoom of the image either way.
        shear: largest horizontal shear (slant) of the image.
        stroke: largest blend towards a 3x3 thickened or thinned image (pen width).
        blur: largest Gaussian blur sigma (pixels of the model input).
        p_image_warp: share of training samples that get the image warps.
    """

    p_audio_missing: float = 0.15
    p_video_missing: float = 0.15
    time_masks: int = 2
    time_width: int = 12
    freq_masks: int = 2
    freq_width: int = 8
    shift: int = 4
    contrast: float = 0.2
    noise: float = 0.05
    vtl_warp: float = 0.0
    tempo: float = 1.0
    eq: float = 0.0
    p_audio_warp: float = 0.0
    rotate: float = 0.0
    scale: float = 0.0
    shear: float = 0.0
    stroke: float = 0.0
    blur: float = 0.0
    p_image_warp: float = 0.0

    @classmethod
    def varied(cls, **overrides: float) -> AugmentConfig:
        """The default model's recipe: every warp on, for voices and writers never seen.

        Strengths are set once from what speakers and writers differ by (vocal tracts
        +-12 %, speaking rate 0.8-1.25x, microphone EQ of a few dB; slant, size, pen
        width, focus) and never tuned on the test-only sources.
        """
        base = {
            "vtl_warp": 0.12,
            "tempo": 1.25,
            "eq": 0.15,
            "p_audio_warp": 0.8,
            "rotate": 10.0,
            "scale": 0.12,
            "shear": 0.25,
            "stroke": 1.0,
            "blur": 0.8,
            "p_image_warp": 0.8,
        }
        return cls(**{**base, **overrides})


def _band_mask(
    batch: int, length: int, count: int, width: int, gen: torch.Generator
) -> torch.Tensor:
    """[batch, length] bool, True inside `count` random bands of up to `width`."""
    pos = torch.arange(length)
    out = torch.zeros(batch, length, dtype=torch.bool)
    for _ in range(count):
        w = torch.randint(0, width + 1, (batch, 1), generator=gen)
        s = (torch.rand(batch, 1, generator=gen) * (length - w + 1)).long()
        out |= (pos >= s) & (pos < s + w)
    return out


def spec_augment(audio: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Time and frequency masks on [B, n_mels, T] (set to 0, the normalised mean)."""
    b, f, t = audio.shape
    tm = _band_mask(b, t, cfg.time_masks, cfg.time_width, gen)[:, None, :]
    fm = _band_mask(b, f, cfg.freq_masks, cfg.freq_width, gen)[:, :, None]
    return audio.masked_fill(tm | fm, 0.0)


def image_augment(image: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Random translation (edge fill), contrast/brightness jitter and noise on [B, C, H, W]."""
    b = image.shape[0]
    if cfg.shift > 0:
        s = cfg.shift
        padded = torch.nn.functional.pad(image, (s, s, s, s), mode="replicate")
        dy = torch.randint(0, 2 * s + 1, (b,), generator=gen)
        dx = torch.randint(0, 2 * s + 1, (b,), generator=gen)
        h, w = image.shape[2], image.shape[3]
        c = image.shape[1]
        rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(-1, c, -1, w)
        cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(-1, c, h, -1)
        flat = padded.flatten(2)
        idx = rows * padded.shape[3] + cols
        image = flat.gather(2, idx.flatten(2)).reshape_as(image)
    scale = 1.0 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * cfg.contrast
    bias = (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * cfg.contrast
    return image * scale + bias + torch.randn(image.shape, generator=gen) * cfg.noise


def modality_dropout(
    audio: torch.Tensor,
    image: torch.Tensor,
    cfg: AugmentConfig,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop whole modalities per sample: zero the input AND clear its mask column.

    Returns:
        (audio, image, mask) with mask [B, 2] in (audio, video) order.
    """
    b = audio.shape[0]
    r = torch.rand(b, generator=gen)
    audio_missing = r < cfg.p_audio_missing
    video_missing = (r >= cfg.p_audio_missing) & (r < cfg.p_audio_missing + cfg.p_video_missing)
    mask = torch.stack([~audio_missing, ~video_missing], dim=1).to(audio.dtype)
    audio = audio * mask[:, 0, None, None]
    image = image * mask[:, 1, None, None, None]
    return audio, image, mask
