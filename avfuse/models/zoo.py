"""The model zoo: names, their typed config, and one `build_model` that rebuilds any of them.

A checkpoint stores a `ModelConfig` as a dict next to the state dict, so the
training code, the exporter and the torch backend all rebuild a model the same
way: ``build_model(ModelConfig(**ckpt["config"]))``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from avfuse.errors import UsageError

#: zoo member name -> fusion type (the manifest's ``fusion``)
ZOO: dict[str, str] = {
    "audio": "audio",
    "video": "video",
    "early": "early",
    "late": "late",
    "attention": "attention",
    "hybrid": "hybrid",
    "embed": "late",
}
FUSED = ("early", "late", "attention", "hybrid", "embed")
#: members with a shared audio-visual embedding (contrastive pre-training applies to them)
EMBEDDING = ("embed",)
#: graph outputs of an exported embedding member, in order
EMBED_OUTPUTS = ("logits", "audio_probs", "video_probs", "audio_embedding", "video_embedding")
UNIMODAL = ("audio", "video")

#: graph input name -> manifest modality role
INPUT_ROLES = {"audio": "audio", "image": "video", "mask": "mask"}
MASK_ORDER = ("audio", "video")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Architecture of one zoo member; enough to rebuild it from a state dict.

    Attributes:
        name: zoo member (a key of `ZOO`).
        n_mels: log-mel bands (audio input channels).
        n_frames: log-mel frames per window.
        height: image height.
        width: image width.
        channels: image channels (1 for gray).
        n_classes: output classes.
        dim: encoder feature width.
        dropout: dropout before the classifier.
        embed_dim: width of the shared embedding (members in `EMBEDDING` only).
    """

    name: str
    n_mels: int = 64
    n_frames: int = 97
    height: int = 48
    width: int = 64
    channels: int = 1
    n_classes: int = 11
    dim: int = 64
    dropout: float = 0.2
    embed_dim: int = 32

    def __post_init__(self) -> None:
        if self.name not in ZOO:
            raise UsageError(f"unknown model {self.name!r}; choose one of {sorted(ZOO)}")

    @property
    def fusion(self) -> str:
        """The manifest's fusion type."""
        return ZOO[self.name]

    @property
    def inputs(self) -> tuple[str, ...]:
        """Graph input names, in forward() order."""
        return {"audio": ("audio",), "video": ("image",)}.get(self.name, ("audio", "image", "mask"))

    @property
    def outputs(self) -> tuple[str, ...]:
        """Graph output names of the exported model, the driving logits first."""
        return EMBED_OUTPUTS if self.name in EMBEDDING else ("logits",)

    def to_dict(self) -> dict[str, Any]:
        """JSON/pickle-friendly form stored in checkpoints."""
        return asdict(self)


def _audio_tokens(n_frames: int) -> int:
    t = n_frames
    for _ in range(3):  # three stride-2 convs with padding 2, kernel 5
        t = (t + 2 * 2 - 5) // 2 + 1
    return t


def build_model(config: ModelConfig) -> Any:
    """A fresh (untrained) torch module for `config`."""
    from avfuse.models import fusion as f

    common = {"n_classes": config.n_classes, "dim": config.dim, "dropout": config.dropout}
    if config.name == "audio":
        return f.AudioOnly(n_mels=config.n_mels, **common)
    if config.name == "video":
        return f.VideoOnly(channels=config.channels, **common)
    both = {"n_mels": config.n_mels, "channels": config.channels, **common}
    if config.name == "early":
        return f.EarlyFusion(**both)
    if config.name == "late":
        return f.LateFusion(**both)
    if config.name == "embed":
        return f.EmbedFusion(**both, embed_dim=config.embed_dim)
    if config.name == "hybrid":
        return f.HybridFusion(**both)
    return f.AttentionFusion(
        **both,
        audio_tokens=_audio_tokens(config.n_frames),
        image_tokens=(config.height // 8) * (config.width // 8),
    )


def count_parameters(model: Any) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
