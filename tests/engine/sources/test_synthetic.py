"""SyntheticSource: what it delivers matches its ground truth, its faults show in the stamps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avfuse.engine.sources import open_source
from avfuse.engine.sources.synthetic import (
    SceneItem,
    SceneScript,
    SyntheticSource,
)
from avfuse.errors import UsageError
from tests.fixtures.sinks import RecordingFrameSink

SR = 16000


class Sink(RecordingFrameSink):
    """Keeps blocks as delivered: a test checks they are views of one track, not copies."""

    def __init__(self) -> None:
        super().__init__(copy_audio=False)


def run(src: SyntheticSource, timeout: float = 30.0) -> Sink:
    sink = Sink()
    src.start(sink)
    assert src.finished.wait(timeout), "source did not finish"
    src.stop()
    assert [s.kind for s in sink.statuses] == ["eos"]
    return sink


def short_script(seed: int = 0, digits: str = "372") -> SceneScript:
    return SceneScript.default(seed=seed, digits=digits)


def onset_host_s(sink: Sink, origin: int, after_s: float, thr: float = 0.05) -> float:
    """Host time (s after origin) of the first audio sample above `thr` after `after_s`."""
    for samples, _dev, host, _ in sink.a:
        if (host - origin) / 1e9 + len(samples) / SR < after_s:
            continue
        idx = np.flatnonzero(np.abs(samples) > thr)
        if idx.size:
            t0 = (host - origin) / 1e9
            dt = np.arange(len(samples))[idx] / SR
            ok = t0 + dt >= after_s
            if ok.any():
                return float(t0 + dt[ok][0])
    raise AssertionError("no onset found")


def test_default_scene_has_every_digit_once_with_pauses() -> None:
    script = SceneScript.default(seed=4)
    labels = [it.label for it in script.items]
    assert sorted(labels) == list("0123456789")
    assert labels != sorted(labels)  # shuffled
    assert script.duration_s == pytest.approx(22.0, abs=4.0)
    for a, b in zip(script.items, script.items[1:], strict=False):
        assert 0.6 - 1e-6 <= b.card_start - a.card_end <= 1.0 + 1e-6
    for it in script.items:
        assert it.card_end - it.card_start == pytest.approx(1.5)
        assert it.speech_start == it.card_start  # speech starts with its card (clapperboard)
    assert SceneScript.default(seed=4) == script
    assert [i.label for i in SceneScript.default(seed=5).items] != labels


def test_cards_are_visible_exactly_in_their_intervals() -> None:
    src = SyntheticSource(script=short_script(), sample_rate=SR)
    truth = src.truth()
    sink = run(src)
    assert src.render is not None
    background = src.render.frames[0]
    assert len(sink.v) == src.render.n_frames
    shown: dict[str, list[float]] = {}
    for frame, dev, _, _ in sink.v:
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        inside = [t for t in truth if t["card"][0] <= dev < t["card"][1]]
        if inside:
            assert not np.array_equal(frame, background), f"card missing at {dev:.3f}"
            shown.setdefault(inside[0]["label"], []).append(dev)
        else:
            assert np.array_equal(frame, background), f"card seen outside its interval at {dev}"
    for t in truth:
        times = shown[t["label"]]
        assert len(times) == 45  # 1.5 s at 30 fps
        assert min(times) - t["card"][0] < 1 / 30


def test_audio_energy_is_in_the_utterance_intervals() -> None:
    src = SyntheticSource(script=short_script(), sample_rate=SR)
    truth = src.truth()
    sink = run(src)
    audio = np.concatenate([a[0] for a in sink.a])
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    rms = lambda a, b: float(np.sqrt(np.mean(audio[int(a * SR) : int(b * SR)] ** 2)))  # noqa: E731
    speech_in = [t["speech"] for t in truth]
    quiet = [(truth[i]["end"] + 0.05, truth[i + 1]["start"] - 0.05) for i in range(len(truth) - 1)]
    noise = max(rms(a, b) for a, b in quiet)
    for a, b in speech_in:
        assert rms(a, b) > 20 * noise
    assert noise < 0.01


def test_truth_is_written_as_json(tmp_path: Path) -> None:
    src = SyntheticSource(script=short_script(), sample_rate=SR)
    path = src.write_truth(tmp_path / "truth.json")
    data = json.loads(path.read_text())
    assert [d["label"] for d in data] == [it.label for it in src.script.items]
    for d in data:
        assert d["start"] <= d["card"][0] < d["card"][1] <= d["end"]
        assert d["start"] <= d["speech"][0] < d["speech"][1] <= d["end"]


def test_drift_shows_in_audio_timestamps_not_video() -> None:
    src = SyntheticSource(script=short_script(), sample_rate=SR, drift_ppm=300)
    sink = run(src)
    dev = np.array([a[1] for a in sink.a])
    host = np.array([a[2] for a in sink.a], dtype=np.float64) / 1e9
    slope = np.polyfit(dev, host, 1)[0]
    assert slope == pytest.approx(1 / (1 + 300e-6), abs=2e-7)
    vdev = np.array([v[1] for v in sink.v])
    vhost = np.array([v[2] for v in sink.v], dtype=np.float64) / 1e9
    assert np.polyfit(vdev, vhost, 1)[0] == pytest.approx(1.0, abs=2e-7)
    # more samples than nominal: the device clock runs fast
    assert len(src._track) == int(src.script.duration_s * SR * (1 + 300e-6))


@pytest.mark.parametrize("offset_ms", [0.0, 120.0])
def test_av_offset_shows_as_late_speech(offset_ms: float) -> None:
    src = SyntheticSource(script=short_script(), sample_rate=SR, av_offset_ms=offset_ms)
    truth = src.truth()
    sink = run(src)
    origin = src.origin_ns
    assert sink.v[0][2] == origin  # video frame 0 is stamped at the origin
    scene_audio = src.render.audio  # what was said, in scene time
    for t in truth:
        onset = onset_host_s(sink, origin, t["card"][0])
        s0 = int(t["speech"][0] * SR)
        said = (s0 + np.flatnonzero(np.abs(scene_audio[s0:]) > 0.05)[0]) / SR
        assert onset - said == pytest.approx(offset_ms / 1000, abs=0.001)


def test_jitter_drops_and_gaps() -> None:
    src = SyntheticSource(
        script=short_script(),
        sample_rate=SR,
        jitter_ms=8,
        drop_frames=(5, 6, 40),
        audio_gaps=((1.0, 1.5),),
    )
    sink = run(src)
    origin = src.origin_ns
    vdev = np.array([v[1] for v in sink.v])
    assert not np.isin(np.round(vdev * 30).astype(int), [5, 6, 40]).any()
    assert len(sink.v) == src.render.n_frames - 3
    late = np.array([(v[2] - origin) / 1e9 - v[1] for v in sink.v])
    assert late.min() >= -1e-6 and late.max() <= 0.008 + 1e-6 and late.std() > 0.001
    for kind in (sink.a, sink.v):
        host = np.array([x[2] for x in kind])
        assert (np.diff(host) > 0).all()  # arrival stamps increase even with jitter
    adev = np.array([a[1] for a in sink.a])
    assert not ((adev + 0.02 > 1.0) & (adev < 1.5)).any()
    assert np.diff(adev).max() == pytest.approx(0.52, abs=0.021)  # the hole in device time


def test_same_seed_same_delivery_other_seed_differs() -> None:
    def stamps(seed: int) -> tuple[list, np.ndarray]:
        src = SyntheticSource(
            script=short_script(seed), sample_rate=SR, jitter_ms=5, drop_video=0.1
        )
        sink = run(src)
        origin = src.origin_ns
        rel = np.array([x[2] - origin for x in sink.a + sink.v])
        return src.truth(), rel

    t1, r1 = stamps(1)
    t2, r2 = stamps(1)
    t3, r3 = stamps(2)
    assert t1 == t2 and np.array_equal(r1, r2)
    assert t1 != t3


def test_frames_and_blocks_are_views_not_copies() -> None:
    src = SyntheticSource(script=short_script(digits="5"), sample_rate=SR, block_ms=10)
    sink = run(src)
    assert src.info.audio is not None and src.info.audio.block_size == 160
    assert all(len(a[0]) == 160 for a in sink.a)
    frames = src.render.frames
    assert all(any(f[0] is g or f[0].base is g for g in frames) for f in sink.v)
    assert all(np.shares_memory(a[0], src._track) for a in sink.a)


def test_realtime_never_delivers_ahead_of_its_timestamp() -> None:
    script = SceneScript(
        items=(SceneItem(label="4", card_start=0.1, card_end=0.8, speech_start=0.2),),
        duration_s=1.0,
    )
    src = SyntheticSource(script=script, sample_rate=SR, realtime=True, jitter_ms=15)
    assert src.info.live
    sink = run(src)
    assert len(sink.v) == 30
    for _, _, host, arrival in sink.a + sink.v:
        assert arrival >= host


def test_options_and_script_are_validated() -> None:
    with pytest.raises(UsageError, match="outside"):
        SceneScript(
            items=(SceneItem(label="1", card_start=0, card_end=3, speech_start=0),), duration_s=2
        )
    with pytest.raises(UsageError, match="digit"):
        SceneScript(
            items=(SceneItem(label="x", card_start=0, card_end=1, speech_start=0),), duration_s=2
        )
    with pytest.raises(UsageError):
        SyntheticSource(drop_video=1.5)
    with pytest.raises(UsageError):
        SyntheticSource(audio=False, video=False)
    with pytest.raises(UsageError, match="frame_rate"):
        SyntheticSource(frame_rate=30)


def test_open_source_makes_synthetic_and_media_sources(tmp_path: Path) -> None:
    src = open_source("synthetic:5", sample_rate=SR, av_offset_ms=40)
    assert isinstance(src, SyntheticSource)
    assert src.script == SceneScript.default(seed=5)
    assert src.config.av_offset_ms == 40 and not src.info.live
    assert open_source("synthetic", sample_rate=SR).script == SceneScript.default(seed=0)
    with pytest.raises(UsageError, match="seed"):
        open_source("synthetic:x", sample_rate=SR)
    with pytest.raises(UsageError):
        open_source("  ", sample_rate=SR)
    from avfuse.engine.sources.media import MediaSource

    m = open_source(str(tmp_path / "a.mp4"), sample_rate=SR)
    assert isinstance(m, MediaSource) and not m.live
    u = open_source("udp://127.0.0.1:5004", sample_rate=SR)
    assert isinstance(u, MediaSource) and u.live
    from avfuse.engine.sources.camera import CameraSource
    from avfuse.engine.sources.microphone import MicrophoneSource

    mic = open_source("mic:pulse", sample_rate=SR)  # constructed only, not opened
    assert isinstance(mic, MicrophoneSource) and mic.config.device == "pulse"
    cam = open_source("camera:2", sample_rate=SR)
    assert isinstance(cam, CameraSource) and cam.config.device == 2


@pytest.mark.timeout(60)
def test_a_mismatched_item_speaks_its_own_digit_and_its_truth_names_both() -> None:
    from dataclasses import replace

    from avfuse.engine.sources.synthetic import SceneRender, load_default_material

    material = load_default_material()
    script = short_script(digits="37")
    first = script.items[0]
    mism = replace(script, items=(replace(first, speech_label="5"), *script.items[1:]))
    r = SceneRender(mism, material, sample_rate=SR, noise_dbfs=-120.0)
    utt = material.utterances[5][first.variant % len(material.utterances[5])]
    s0 = int(round(first.speech_start * SR))
    np.testing.assert_allclose(r.audio[s0 : s0 + len(utt)], utt, atol=1e-5)
    truth = r.truth()
    assert truth[0]["label"] == first.label and truth[0]["speech_label"] == "5"
    assert "speech_label" not in truth[1]  # a matched item's truth is as before
    # the card is still the card's digit: the frames are the matched scene's
    same = SceneRender(script, material, sample_rate=SR, noise_dbfs=-120.0)
    assert all(np.array_equal(a, b) for a, b in zip(r.frames, same.frames, strict=True))
    with pytest.raises(UsageError, match="not a digit"):
        SceneScript(items=(replace(first, speech_label="x"),), duration_s=script.duration_s)
