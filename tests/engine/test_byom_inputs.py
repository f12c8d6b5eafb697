"""Bring your own model, inputs: each input role of a v2 manifest, driven through the real
pipeline with a hand-built graph (tests/fixtures/graphs.py) whose outputs show what it
was fed; expected values are worked out by hand from the media the test made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avfuse.errors import ManifestError
from tests.fixtures import graphs as g

pytestmark = pytest.mark.timeout(30)


def _window(e: int, n: int = 576, total: int = 16000) -> list[int]:
    """Indices + 1 of the ramp samples a window ending at sample `e` holds (0: none there)."""
    return [j + 1 if 0 <= j < total else 0 for j in range(e - n, e)]


def _seen(v) -> list[int]:
    """The sample numbers a `waveform_window` record shows (the ramp is (i + 1) * 1e-5)."""
    return np.round(np.asarray(v.values) * 1e5).astype(int).tolist()


@pytest.mark.timeout(10)
def test_waveform_window_holds_the_previous_64_samples_zeros_at_the_start(tmp_path: Path) -> None:
    # chunk 512 + context 64: call k (k >= 1) sees samples [512 k - 576, 512 k), the first
    # 64 of them the tail of the previous call's chunk; before the start they read 0
    res = g.run_tiny(tmp_path, [g.waveform_window()], [g.ArraySource(audio=g.ramp(16000))])
    vals = g.of(res.records, "value", "window")
    assert len(vals) == 16000 // 512  # 31 whole chunks; the last 128 samples make none
    for k, v in enumerate(vals, start=1):
        assert v.output == "seen" and v.stream == "array"
        assert v.stream_time == pytest.approx(512 * k / 16000, abs=1e-3)
        assert _seen(v) == _window(512 * k), f"call {k}"
    assert _seen(vals[0])[:64] == [0] * 64
    assert _seen(vals[1])[:64] == list(range(449, 513))  # the end of the first chunk


@pytest.mark.timeout(10)
def test_const_inputs_0d_and_batched_reach_the_graph(tmp_path: Path) -> None:
    # sr is a 0-d int64 (no batch axis), bias a float32 [2] repeated on batch axis 0:
    # the graph gives float(sr) + bias
    res = g.run_tiny(tmp_path, [g.const_probe()], [g.ArraySource(audio=g.ramp(8000))])
    vals = g.of(res.records, "value", "consts")
    assert len(vals) == 8000 // 512
    assert {v.values for v in vals} == {(16000.25, 16000.5)}


@pytest.mark.timeout(10)
def test_state_with_batch_axis_1_is_carried_per_stream(tmp_path: Path) -> None:
    # h is [2, batch, 3]; each call adds 1 to layer 0 and 10 to layer 1: the k-th call of
    # a stream reads (100 + k, 100 + 10 k). Two streams share batches (batch axis 1) and
    # must not see each other's state.
    srcs = [
        g.ArraySource(name="a", audio=g.ramp(8000)),
        g.ArraySource(name="b", audio=g.ramp(4000)),
    ]
    res = g.run_tiny(tmp_path, [g.state_counter()], srcs, max_wait_ms=50.0)
    for name, n in (("a", 8000 // 512), ("b", 4000 // 512)):
        vals = [v for v in g.of(res.records, "value", "counter") if v.stream == name]
        assert [v.values for v in vals] == [(100.0 + k, 100.0 + 10 * k) for k in range(n)], name
    assert res.summary.batches < res.summary.frames  # rows of both streams shared batches


@pytest.mark.timeout(10)
def test_state_starts_again_from_init_after_an_audio_gap(tmp_path: Path) -> None:
    # audio blocks in [0.5, 0.7) s are not delivered: samples [8000, 11200) are missing.
    # The first window ending past the gap (end 11264, 0.704 s) starts from init again;
    # windows with less than half their samples are marked degraded.
    src = g.ArraySource(audio=g.ramp(16000), audio_gap=(0.5, 0.7))
    res = g.run_tiny(tmp_path, [g.state_counter()], [src])
    vals = g.of(res.records, "value", "counter")
    ends = [512 * (k + 1) for k in range(len(vals))]
    assert len(vals) == 31
    restart = ends.index(11264)
    want = [100.0 + k for k in range(restart)] + [100.0 + k for k in range(len(vals) - restart)]
    assert [v.values[0] for v in vals] == want
    valid = [sum(1 for j in range(e - 512, e) if not 8000 <= j < 11200) for e in ends]
    assert [v.degraded for v in vals] == [n < 256 for n in valid]
    assert any(r.kind == "audio_gap" for r in g.of(res.records, "warning"))


def _bgr_frame() -> np.ndarray:
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 10, 20, 30  # B, G, R
    return frame


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("resize", "size", "extra", "want"),
    [
        ("stretch", (24, 32), {}, (30.0, 20.0, 10.0)),
        ("crop", (32, 32), {}, (30.0, 20.0, 10.0)),
        # 160x120 fits 32x32 as 32x24: 8 of 32 rows are border
        ("letterbox", (32, 32), {}, (22.5, 15.0, 7.5)),
        ("letterbox", (32, 32), {"pad_value": 100}, (47.5, 40.0, 32.5)),
    ],
)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "area"])
def test_nhwc_uint8_input_gets_raw_resized_pixels(
    tmp_path: Path, resize: str, size: tuple[int, int], extra: dict, want: tuple, interpolation: str
) -> None:
    # the graph averages each channel of a [batch, H, W, 3] uint8 input: raw pixel values
    # (no scale, mean or std), RGB order, letterbox border at pad_value
    video = {
        **{"height": size[0], "width": size[1], "colour": "rgb", "dtype": "uint8"},
        **{"layout": "NHWC", "interpolation": interpolation, "resize": resize, **extra},
    }
    res = g.run_tiny(
        tmp_path, [g.channel_means(video=video)], [g.ArraySource(frames=[_bgr_frame()] * 3)]
    )
    vals = g.of(res.records, "value", "pixels")
    assert [v.values for v in vals] == [want] * 3


@pytest.mark.timeout(10)
def test_nhwc_bgr_colour_keeps_the_cameras_channel_order(tmp_path: Path) -> None:
    video = {"height": 24, "width": 32, "colour": "bgr", "dtype": "uint8", "layout": "NHWC",
             "interpolation": "nearest"}  # fmt: skip
    res = g.run_tiny(
        tmp_path, [g.channel_means(video=video)], [g.ArraySource(frames=[_bgr_frame()])]
    )
    assert [v.values for v in g.of(res.records, "value")] == [(10.0, 20.0, 30.0)]


@pytest.mark.timeout(10)
def test_stacked_frames_input_holds_the_last_three_frames_oldest_first(tmp_path: Path) -> None:
    # frame k is gray level 10 k; the input holds frames k-2, k-1, k (zeros before the start)
    frames = [g.gray_frame(10 * k) for k in range(6)]
    res = g.run_tiny(tmp_path, [g.stacked_means()], [g.ArraySource(frames=frames)])
    got = [tuple(round(x * 255) for x in v.values) for v in g.of(res.records, "value", "stack")]
    assert got == [tuple(10 * j if j >= 0 else 0 for j in (k - 2, k - 1, k)) for k in range(6)]


@pytest.mark.timeout(10)
def test_every_frames_from_the_manifest_and_from_options(tmp_path: Path) -> None:
    # frame k is gray level k: the graph reports k / 255
    frames = [g.gray_frame(k) for k in range(20)]
    tiny = g.changed(g.frame_mean(), cadence={"every_frames": 3})

    def levels(**kw) -> list[int]:
        res = g.run_tiny(tmp_path, [tiny], [g.ArraySource(frames=frames)], **kw)
        return [round(v.values[0] * 255) for v in g.of(res.records, "value", "frames")]

    assert levels() == list(range(0, 20, 3))
    assert levels(options={"frames": {"every_frames": 5}}) == list(range(0, 20, 5))


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("every_ms", "step"), [(96.0, 1536), (100.0, 1536), (64.0, 1024)])
def test_every_ms_steps_whole_chunks(tmp_path: Path, every_ms: float, step: int) -> None:
    # a 512-sample chunk model every 96 ms (100 ms rounds to 3 chunks too): windows end
    # at 512, 512 + step, ...; its output is the window's last ramp sample
    tiny = g.changed(g.chunk_peak(), cadence={"every_ms": every_ms})
    res = g.run_tiny(tmp_path, [tiny], [g.ArraySource(audio=g.ramp(16000))])
    ends = list(range(512, 16001, step))
    vals = g.of(res.records, "value", "embed")
    assert [round(v.values[0] * 1e5) for v in vals] == ends
    assert [v.stream_time for v in vals] == [round(e / 16000, 3) for e in ends]


@pytest.mark.timeout(10)
def test_every_ms_option_overrides_the_manifest(tmp_path: Path) -> None:
    tiny = g.changed(g.chunk_peak(), cadence={"every_ms": 96.0})
    res = g.run_tiny(
        tmp_path, [tiny], [g.ArraySource(audio=g.ramp(8000))], options={"embed": {"every_ms": 32.0}}
    )
    assert [round(v.values[0] * 1e5) for v in g.of(res.records, "value")] == list(
        range(512, 8001, 512)
    )


def test_a_graph_input_missing_from_the_manifest_is_refused_naming_it(tmp_path: Path) -> None:
    tiny = g.const_probe()
    tiny.manifest["inputs"] = [s for s in tiny.manifest["inputs"] if s["name"] != "sr"]
    path = g.write(tmp_path / "m", tiny)
    with pytest.raises(ManifestError) as e:
        g.load(path)
    assert e.value.field == "inputs"
    assert "'sr'" in str(e.value) and "inputs" in str(e.value)


def test_a_manifest_input_the_graph_lacks_is_refused_naming_the_field(tmp_path: Path) -> None:
    tiny = g.const_probe()
    tiny.manifest["inputs"].append(
        {"name": "gain", "role": "const", "dtype": "float32", "value": 1}
    )
    with pytest.raises(ManifestError) as e:
        g.load(g.write(tmp_path / "m", tiny))
    assert e.value.field == "inputs[3].name" and "'gain'" in str(e.value)
