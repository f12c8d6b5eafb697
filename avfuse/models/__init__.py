"""The fusion model zoo and its training (needs the `train` extra: torch).

    zoo          names, ModelConfig, build_model (rebuild any member from a checkpoint)
    encoders     image CNN and log-mel Conv1d encoders
    fusion       early, late, attention and hybrid heads; audio-only and video-only baselines
    features     reference pre-processing of AV-digits splits, cached on disk, normalised
    augment      modality dropout, SpecAugment, image jitter
    train        the training loop, evaluation under missing-modality conditions
    checkpoint   save / read / rebuild checkpoints
    experiment   one run end to end (`avfuse train --model NAME`)
    report       the whole zoo, accuracy.json and the README table (`avfuse train --zoo`)

Importing this package imports nothing heavy; the modules import torch when used.
"""
