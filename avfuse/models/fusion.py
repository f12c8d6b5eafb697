"""Fusion heads and unimodal baselines over the shared encoders.

Fused models take ``(audio, image, mask)``: mask is [B, 2] in the order
(audio, video), 1 present, 0 missing. A missing modality arrives zeroed AND
flagged; every head also multiplies that modality's features by its mask
column, so the zeros never leak through batch-norm offsets into the fused
decision. Unimodal baselines take only their own input.

Every fused model also exposes `unimodal_logits`, one linear head per encoder,
which training uses as an auxiliary loss: it keeps each encoder useful on its
own, which is what a fused model runs on when one modality is missing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from avfuse.models.encoders import AudioEncoder, ImageEncoder
from avfuse.models.zoo import EMBED_OUTPUTS


class _Fused(nn.Module):
    """Shared parts: both encoders and the unimodal heads."""

    inputs: tuple[str, ...] = ("audio", "image", "mask")

    def __init__(self, *, n_mels: int, channels: int, n_classes: int, dim: int) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(n_mels=n_mels, dim=dim)
        self.image_encoder = ImageEncoder(in_channels=channels, dim=dim)
        self.audio_head = nn.Linear(dim, n_classes)
        self.video_head = nn.Linear(dim, n_classes)

    @staticmethod
    def _split(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mask[:, 0:1], mask[:, 1:2]

    def unimodal_logits(
        self, audio: torch.Tensor, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-modality logits (auxiliary training targets)."""
        return self.audio_head(self.audio_encoder(audio)), self.video_head(
            self.image_encoder(image)
        )


def _mlp(din: int, dim: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(din, dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(dim, n_classes)
    )


class EarlyFusion(_Fused):
    """Concatenate the masked features and the mask, then an MLP."""

    fusion = "early"

    def __init__(self, *, n_mels: int, channels: int, n_classes: int, dim: int, dropout: float):
        super().__init__(n_mels=n_mels, channels=channels, n_classes=n_classes, dim=dim)
        self.head = _mlp(2 * dim + 2, 2 * dim, n_classes, dropout)

    def features(self, audio: torch.Tensor, image: torch.Tensor, mask: torch.Tensor):
        ma, mv = self._split(mask)
        fa = self.audio_encoder(audio) * ma
        fv = self.image_encoder(image) * mv
        return fa, fv

    def forward(self, audio: torch.Tensor, image: torch.Tensor, mask: torch.Tensor):
        fa, fv = self.features(audio, image, mask)
        return self.head(torch.cat([fa, fv, mask], dim=1))


class LateFusion(_Fused):
    """Masked average of the unimodal heads' logits."""

    fusion = "late"

    def __init__(self, *, n_mels: int, channels: int, n_classes: int, dim: int, dropout: float):
        super().__init__(n_mels=n_mels, channels=channels, n_classes=n_classes, dim=dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, audio: torch.Tensor, image: torch.Tensor, mask: torch.Tensor):
        ma, mv = self._split(mask)
        la = self.audio_head(self.drop(self.audio_encoder(audio)))
        lv = self.video_head(self.drop(self.image_encoder(image)))
        return (la * ma + lv * mv) / torch.clamp(ma + mv, min=1.0)


class EmbedFusion(LateFusion):
    """Late fusion whose encoders also map into one shared, L2-normalised embedding space.

    Each encoder's pooled feature goes through its own small projection (Linear, ReLU,
    Linear) to `embed_dim` and is normalised to unit length; `logit_scale` (log of
    1 / temperature) scales the cosine similarities in the InfoNCE loss
    (`avfuse.models.contrastive`). `forward` is late fusion's, so training and evaluation
    treat it as any fused model; `outputs` is what the exported graph returns.
    """

    fusion = "late"
    #: names of `outputs`' tensors, in order (the exported graph's outputs)
    OUTPUTS = EMBED_OUTPUTS

    def __init__(
        self,
        *,
        n_mels: int,
        channels: int,
        n_classes: int,
        dim: int,
        dropout: float,
        embed_dim: int,
        temperature: float = 0.1,
    ):
        super().__init__(
            n_mels=n_mels, channels=channels, n_classes=n_classes, dim=dim, dropout=dropout
        )
        self.audio_proj = _projection(dim, embed_dim)
        self.video_proj = _projection(dim, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def embed(self, audio: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-norm (audio, image) embeddings [B, embed_dim]."""
        za = self.audio_proj(self.audio_encoder(audio))
        zv = self.video_proj(self.image_encoder(image))
        return nn.functional.normalize(za, dim=1), nn.functional.normalize(zv, dim=1)

    def train_terms(self, audio: torch.Tensor, image: torch.Tensor, mask: torch.Tensor):
        """One encoder pass for every training term.

        Returns:
            (fused logits, audio logits, video logits, audio embedding, image embedding):
            the fused logits as `forward` computes them (dropout on the features), the
            unimodal logits and embeddings without it.
        """
        ma, mv = self._split(mask)
        fa, fv = self.audio_encoder(audio), self.image_encoder(image)
        fused = (self.audio_head(self.drop(fa)) * ma + self.video_head(self.drop(fv)) * mv) / (
            torch.clamp(ma + mv, min=1.0)
        )
        za = nn.functional.normalize(self.audio_proj(fa), dim=1)
        zv = nn.functional.normalize(self.video_proj(fv), dim=1)
        return fused, self.audio_head(fa), self.video_head(fv), za, zv

    def outputs(self, audio: torch.Tensor, image: torch.Tensor, mask: torch.Tensor):
        """The exported graph's outputs (`OUTPUTS`), in eval mode.

        The per-modality probabilities are each head's softmax on its own input, whatever
        the mask says: the agreement check reads them only for modalities present.
        """
        ma, mv = self._split(mask)
        fa, fv = self.audio_encoder(audio), self.image_encoder(image)
        la, lv = self.audio_head(fa), self.video_head(fv)
        logits = (la * ma + lv * mv) / torch.clamp(ma + mv, min=1.0)
        za = nn.functional.normalize(self.audio_proj(fa), dim=1)
        zv = nn.functional.normalize(self.video_proj(fv), dim=1)
        return logits, torch.softmax(la, dim=1), torch.softmax(lv, dim=1), za, zv


def _projection(dim: int, embed_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, embed_dim))


class HybridFusion(EarlyFusion):
    """Early (concatenated features) plus late (masked logit average) logits."""

    fusion = "hybrid"

    def forward(self, audio: torch.Tensor, image: torch.Tensor, mask: torch.Tensor):
        ma, mv = self._split(mask)
        fa, fv = self.features(audio, image, mask)
        early = self.head(torch.cat([fa, fv, mask], dim=1))
        late = (self.audio_head(fa) * ma + self.video_head(fv) * mv) / torch.clamp(ma + mv, min=1.0)
        return early + late


class CrossAttention(nn.Module):
    """Multi-head attention of query tokens over another modality's tokens (+ residual, norm)."""

    def __init__(self, *, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """x [B, Nq, D] attends to y [B, Nk, D]; present [B, 1] zeroes the context if y is gone."""
        b, nq, d = x.shape
        nk = y.shape[1]
        h, hd = self.heads, d // self.heads
        q = self.q(x).reshape(b, nq, h, hd).transpose(1, 2)
        k, v = self.kv(y).reshape(b, nk, 2, h, hd).permute(2, 0, 3, 1, 4).unbind(0)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, nq, d)
        return self.norm(x + self.out(ctx) * present.unsqueeze(-1))


class AttentionFusion(_Fused):
    """Cross-modal attention: audio tokens attend to the image grid and vice versa.

    The key modality's presence gates each cross-attention's context (a masked
    modality contributes nothing), and each side's pooled feature is gated by
    its own presence before the joint MLP. With one modality missing, the output
    is the present modality's own (auxiliary) head: attention across modalities
    has nothing to attend to then, and a dedicated head does better.
    """

    fusion = "attention"

    def __init__(
        self,
        *,
        n_mels: int,
        channels: int,
        n_classes: int,
        dim: int,
        dropout: float,
        audio_tokens: int,
        image_tokens: int,
    ):
        super().__init__(n_mels=n_mels, channels=channels, n_classes=n_classes, dim=dim)
        self.audio_pos = nn.Parameter(torch.zeros(1, audio_tokens, dim))
        self.image_pos = nn.Parameter(torch.zeros(1, image_tokens, dim))
        nn.init.normal_(self.audio_pos, std=0.02)
        nn.init.normal_(self.image_pos, std=0.02)
        self.a2v = CrossAttention(dim=dim)
        self.v2a = CrossAttention(dim=dim)
        self.head = _mlp(2 * dim + 2, 2 * dim, n_classes, dropout)

    def forward(self, audio: torch.Tensor, image: torch.Tensor, mask: torch.Tensor):
        ma, mv = self._split(mask)
        at = self.audio_encoder.tokens(audio) + self.audio_pos
        vt = self.image_encoder.tokens(image) + self.image_pos
        a_ctx = self.a2v(at, vt, mv)
        v_ctx = self.v2a(vt, at, ma)
        fa = self.audio_encoder.pool(a_ctx) * ma
        fv = v_ctx.mean(dim=1) * mv
        fused = self.head(torch.cat([fa, fv, mask], dim=1))
        # with one modality missing there is nothing to attend to: fall back to the present
        # modality's own head (trained by the auxiliary loss), by mask arithmetic so the
        # exported graph has no control flow
        la, lv = self.unimodal_logits(audio, image)
        both = ma * mv
        return both * fused + (1.0 - both) * (ma * la + mv * lv)


class AudioOnly(nn.Module):
    """Unimodal baseline on the log-mel alone."""

    fusion = "audio"
    inputs: tuple[str, ...] = ("audio",)

    def __init__(self, *, n_mels: int, n_classes: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(n_mels=n_mels, dim=dim)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_classes))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.head(self.audio_encoder(audio))


class VideoOnly(nn.Module):
    """Unimodal baseline on the image alone."""

    fusion = "video"
    inputs: tuple[str, ...] = ("image",)

    def __init__(self, *, channels: int, n_classes: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.image_encoder = ImageEncoder(in_channels=channels, dim=dim)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_classes))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.image_encoder(image))
