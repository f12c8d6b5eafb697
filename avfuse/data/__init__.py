"""AV-digits: a seeded data set of paired digit images and spoken digits.

    from avfuse.data import DataConfig, load_split, LABELS
    split = load_split("test", config=DataConfig())   # built once, then cached

Each modality is degraded so neither alone is near perfect and fusion wins (as in
AV-MNIST); val/test are held out by voice family and by image source. See
avfuse.data.config for the knobs and the held-out assignment.
"""

from avfuse.data.config import LABELS, NONE_LABEL, SPLITS, DataConfig
from avfuse.data.split import AVDigitsSplit, cache_root, load_split

__all__ = [
    "LABELS",
    "NONE_LABEL",
    "SPLITS",
    "AVDigitsSplit",
    "DataConfig",
    "cache_root",
    "load_split",
]
