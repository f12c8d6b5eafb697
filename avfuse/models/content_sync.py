"""The content sync model: does this stack of frames go with the audio around it?

Two small encoders map a stack of `STACK` grey frames and `AUDIO_COLS` log-mel columns
(200 ms either) to unit vectors in one space; the dot product says how well they go
together. Training is contrastive with time-shifted negatives (InfoNCE): the positive is
the audio centred on the stack's own time, the negatives the same clip's audio 40 to
400 ms earlier or later and other clips' audio. A model that only recognised speech or
an open mouth would score every shift alike; only one that times the mouth against the
sound separates them, which is what the run-time monitor needs (`avfuse.engine.content_sync`).

Training data are talking-mouth scenes in the training style with espeak-ng training
voices (`avfuse.data.talking`); torch is needed here only (`avfuse[train]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avfuse.engine.content_features import (
    AUDIO_COLS,
    FRAME_SIZE,
    HOP_S,
    N_MELS,
    STACK,
    WIN_S,
    LogMel,
    audio_windows,
    gray_small,
    standardise_stacks,
)

EMBED = 32


@dataclass(frozen=True, kw_only=True)
class ContentSyncTrainConfig:
    """How the content sync model is trained.

    Attributes:
        clips: training scenes rendered.
        clip_s: length of each scene.
        voices: espeak-ng training voice configurations.
        phrases_per_voice: phrases each voice speaks.
        steps: optimiser steps.
        batch: anchors (frame stacks) per step.
        max_shift_ms: largest time shift of a negative (multiples of 40 ms).
        temperature: InfoNCE temperature.
        lr: Adam learning rate.
        threads: torch intra-op threads.
        seed: everything random.
    """

    clips: int = 48
    clip_s: float = 8.0
    voices: int = 12
    phrases_per_voice: int = 4
    steps: int = 1500
    batch: int = 32
    max_shift_ms: int = 400
    temperature: float = 0.1
    lr: float = 3e-3
    threads: int = 1
    seed: int = 0


def build_model() -> Any:
    """The two encoders as one torch module: forward(video, audio) -> (v_emb, a_emb)."""
    import torch
    from torch import nn

    class ContentSyncNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.video = nn.Sequential(
                nn.Conv2d(STACK, 16, 5, stride=2, padding=2),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 32, 3, stride=2, padding=1),
                nn.ReLU(),
            )
            self.video_head = nn.Linear(64, EMBED)
            self.audio = nn.Sequential(
                nn.Conv1d(N_MELS, 64, 3, padding=1),
                nn.ReLU(),
                nn.Conv1d(64, 64, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv1d(64, 32, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Flatten(),
            )
            self.audio_head = nn.Linear(32 * ((AUDIO_COLS + 3) // 4), EMBED)

        def forward(self, video: Any, audio: Any) -> tuple[Any, Any]:
            h = self.video(video)
            h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
            v = nn.functional.normalize(self.video_head(h), dim=1)
            a = nn.functional.normalize(self.audio_head(self.audio(audio)), dim=1)
            return v, a

    return ContentSyncNet()


@dataclass
class _Clip:
    frames: np.ndarray  # (n, S, S) grey
    times: np.ndarray  # frame times (s)
    cols: np.ndarray  # (N_MELS, m)


def _clip_features(frames: np.ndarray, fps: float, audio: np.ndarray, mel: LogMel) -> _Clip:
    g = np.empty((len(frames), FRAME_SIZE, FRAME_SIZE), np.float32)
    for k, f in enumerate(frames):
        gray_small(f, g[k])
    return _Clip(frames=g, times=np.arange(len(frames)) / fps, cols=mel.columns(audio))


def make_training_clips(cfg: ContentSyncTrainConfig, *, progress: bool = False) -> list[_Clip]:
    """Render `cfg.clips` training-style scenes spoken by espeak-ng training voices."""
    from avfuse.data.speech_sources import (
        SAMPLE_RATE,
        phrase_text,
        speak,
        speech_scene,
        train_voices,
    )
    from avfuse.data.talking import TRAIN_STYLE, render_talking

    rng = np.random.default_rng([cfg.seed, 1])
    voices = train_voices(cfg.voices, cfg.seed)
    phrases = [[speak(phrase_text(rng), v) for _ in range(cfg.phrases_per_voice)] for v in voices]
    mel = LogMel(SAMPLE_RATE)
    clips = []
    for c in range(cfg.clips):
        pool = phrases[c % len(phrases)] + phrases[(c * 7 + 3) % len(phrases)]
        audio = speech_scene(pool, cfg.clip_s, seed=cfg.seed * 1000 + c)
        h = int(rng.choice([48, 60, 72, 96]))
        fps = float(rng.choice([25.0, 30.0]))
        clip = render_talking(
            audio,
            sample_rate=SAMPLE_RATE,
            style=TRAIN_STYLE,
            seed=cfg.seed * 1000 + c,
            fps=fps,
            width=h * 4 // 3,
            height=h,
        )
        clips.append(_clip_features(clip.frames, fps, audio, mel))
        if progress:
            print(f"clip {c + 1}/{cfg.clips}", flush=True)
    return clips


def col_of(t: np.ndarray) -> np.ndarray:
    """Index of the log-mel column centred nearest stream time `t` (s)."""
    return np.round((np.asarray(t) - WIN_S / 2) / HOP_S).astype(np.int64)


def _batch(
    clips: list[_Clip], rng: np.random.Generator, cfg: ContentSyncTrainConfig, shifts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    half = STACK // 2
    video = np.empty((cfg.batch, STACK, FRAME_SIZE, FRAME_SIZE), np.float32)
    audio = np.empty((cfg.batch, len(shifts), N_MELS, AUDIO_COLS), np.float32)
    for b in range(cfg.batch):
        c = clips[int(rng.integers(0, len(clips)))]
        i = int(rng.integers(half, len(c.times) - half))
        video[b] = c.frames[i - half : i + half + 1]
        audio[b] = audio_windows(c.cols, col_of(c.times[i] + shifts))
    standardise_stacks(video)
    # augmentation: polarity, mirror, shift, noise (the held-out style looks different);
    # loudness (voices differ in level)
    flip = rng.random(cfg.batch) < 0.5
    video[flip] = video[flip][..., ::-1]
    inv = rng.random(cfg.batch) < 0.3
    video[inv] *= -1
    for b in range(cfg.batch):
        dy, dx = rng.integers(-4, 5, 2)
        video[b] = np.roll(video[b], (int(dy), int(dx)), axis=(1, 2))
    video += rng.normal(0, 0.1, video.shape).astype(np.float32)
    audio += rng.uniform(-0.5, 0.5, (cfg.batch, 1, 1, 1)).astype(np.float32)
    np.maximum(audio, -2.0, out=audio)
    return video, audio


def train_content_sync(
    cfg: ContentSyncTrainConfig, clips: list[_Clip] | None = None, *, log: Any = None
) -> tuple[Any, dict[str, float]]:
    """Train the model; returns (model in eval mode, {"loss": ..., "shift_acc": ...}).

    `shift_acc` is the share of the last 100 steps' anchors whose own-time audio scored
    above every shifted one.
    """
    import torch

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    clips = clips if clips is not None else make_training_clips(cfg)
    rng = np.random.default_rng([cfg.seed, 2])
    steps_ms = np.arange(40, cfg.max_shift_ms + 1, 40)
    shifts = np.concatenate([[0.0], steps_ms, -steps_ms]) / 1e3
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    losses: list[float] = []
    accs: list[float] = []
    model.train()
    for step in range(cfg.steps):
        v_np, a_np = _batch(clips, rng, cfg, shifts)
        k = a_np.shape[1]
        v, a = model(torch.from_numpy(v_np), torch.from_numpy(a_np.reshape(-1, N_MELS, AUDIO_COLS)))
        a = a.reshape(cfg.batch, k, EMBED)
        own = torch.einsum("bd,bkd->bk", v, a)  # column 0 is the positive
        others = v @ a[:, 0].T  # other anchors' audio (other clips, other times)
        mask = torch.eye(cfg.batch, dtype=torch.bool)
        others = others.masked_fill(mask, float("-inf"))
        logits = torch.cat([own, others], dim=1) / cfg.temperature
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(cfg.batch, dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        accs.append(float((own.argmax(dim=1) == 0).float().mean()))
        if log is not None and (step + 1) % 100 == 0:
            log(
                f"step {step + 1}: loss {np.mean(losses[-100:]):.3f} "
                f"shift_acc {np.mean(accs[-100:]):.3f}"
            )
    model.eval()
    return model, {
        "loss": float(np.mean(losses[-100:])),
        "shift_acc": float(np.mean(accs[-100:])),
    }


def train_and_export(out_dir: str, cfg: ContentSyncTrainConfig | None = None) -> str:
    """Train with `cfg` and export to `out_dir` (what made the bundled model, 3000 steps)."""
    import dataclasses

    from avfuse.export.content_sync import export_content_sync

    cfg = cfg or ContentSyncTrainConfig(steps=3000)
    clips = make_training_clips(cfg)
    model, figures = train_content_sync(cfg, clips, log=print)
    c = clips[0]
    video = standardise_stacks(np.stack([c.frames[i - 2 : i + 3] for i in range(2, 66)]).copy())
    audio = audio_windows(c.cols, col_of(c.times[2:66]))
    info = {
        "config": dataclasses.asdict(cfg),
        **figures,
        "style": "plain",
        "voices": "espeak-ng train split",
    }
    return str(export_content_sync(model, out_dir, video=video, audio=audio, info=info))


if __name__ == "__main__":  # python -m avfuse.models.content_sync OUT_DIR
    import sys

    print(train_and_export(sys.argv[1] if len(sys.argv) > 1 else "content_sync_model"))


__all__ = [
    "EMBED",
    "ContentSyncTrainConfig",
    "build_model",
    "col_of",
    "make_training_clips",
    "train_and_export",
    "train_content_sync",
]
