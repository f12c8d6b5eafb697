"""speechmos 0.0.1.1 DNSMOS through `avfuse run`: regression (`values`) outputs on long
raw-audio windows, and the P.808 model on a log-mel of librosa's kind.

The reference is the package itself, `speechmos.dnsmos.run(audio, 16000)`, on the same
16 kHz samples avfuse decoded, with its two ONNX sessions wrapped to record what each
window gave. The package cuts 9.01 s windows (144160 samples) every second from the
start, while the whole window fits (`int(floor(n / 16000) - 9.01) + 1` of them), feeds
each to sig_bak_ovr.onnx as it is and the log-mel of its first 144000 samples to
model_v8.onnx, calibrates the raw sig/bak/ovr with one polynomial each and averages
over the windows. avfuse reports the raw per-window outputs; it also runs a last
window the package's count leaves out when one more whole window fits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.thirdparty import kit

RATE = 16000
WINDOW = 144160
HOP = RATE
OUTPUT = "Identity:0"


class _Tap:
    """Stands in for an ORT session and keeps each output."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.outputs: list[np.ndarray] = []

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> Any:
        out = self.session.run(names, feed)
        self.outputs.append(np.array(out[0]))
        return out


@pytest.fixture(scope="module")
def reference(speech_wav: Path) -> dict[str, Any]:
    """The package on the decoded speech: raw outputs per window, clip scores."""
    kit.need("librosa")
    pkg = kit.need("speechmos.dnsmos")
    samples = kit.decode_audio(speech_wav, RATE)
    assert len(samples) >= WINDOW + 4 * HOP  # several windows
    pkg.run(np.zeros(WINDOW, np.float32), RATE)  # builds the package's DNSMOS object
    model = pkg.dnsmos
    primary, p808 = _Tap(model.onnx_sess), _Tap(model.p808_onnx_sess)
    model.onnx_sess, model.p808_onnx_sess = primary, p808
    try:
        clip = pkg.run(samples, RATE)
    finally:
        model.onnx_sess, model.p808_onnx_sess = primary.session, p808.session
    return {
        "primary": np.concatenate(primary.outputs),
        "p808": np.concatenate(p808.outputs),
        "clip": clip,
        "polyfit": model.get_polyfit_val,
    }


def _run(folder: Path, source: Path, name: str, edit: Any = None) -> list[dict[str, Any]]:
    model = kit.install(name, folder / "model", edit=edit)
    return kit.run_values([source], [model], folder / "out.jsonl")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, speech_wav: Path) -> list[dict[str, Any]]:
    """Records of one `avfuse run --values` of the sig_bak_ovr manifest on the speech."""
    return _run(tmp_path_factory.mktemp("dnsmos"), speech_wav, "dnsmos_sig_bak_ovr")


def _check_windows(
    records: list[dict[str, Any]], model: str, ref: np.ndarray, *, window: int = WINDOW
) -> np.ndarray:
    """Assert avfuse's per-window outputs equal the package's; avfuse's values. Window k
    is `window` samples from k s on, decided when its last sample is in."""
    times, got = kit.values(records, model=model, output=OUTPUT)
    n = len(ref)
    assert len(got) in (n, n + 1)  # at most the one window the package's count leaves out
    np.testing.assert_allclose(times, window / RATE + np.arange(len(got)), atol=1e-3)
    errors = kit.frame_errors(got[:n], ref)
    worst = int(errors.argmax())
    assert errors.max() <= kit.TOLERANCE, (
        f"window {worst}: avfuse {got[worst]}, package {ref[worst]}"
    )
    return got[:n]


@pytest.mark.timeout(240)
def test_raw_sig_bak_ovr_match_the_package_window_by_window(
    run: list[dict[str, Any]], reference: dict[str, Any]
) -> None:
    _check_windows(run, "dnsmos", reference["primary"])


@pytest.mark.timeout(240)
def test_the_packages_calibration_of_avfuse_values_gives_its_clip_scores(
    run: list[dict[str, Any]], reference: dict[str, Any]
) -> None:
    raw = _check_windows(run, "dnsmos", reference["primary"])
    sig, bak, ovr = reference["polyfit"](raw[:, 0], raw[:, 1], raw[:, 2], False)
    clip = reference["clip"]
    got = {"sig_mos": sig.mean(), "bak_mos": bak.mean(), "ovrl_mos": ovr.mean()}
    for key, value in got.items():
        assert abs(value - clip[key]) <= kit.TOLERANCE, f"{key}: {value} against {clip[key]}"


@pytest.mark.timeout(240)
def test_p808_mos_matches_the_package_window_by_window(
    tmp_path: Path, speech_wav: Path, reference: dict[str, Any]
) -> None:
    records = _run(tmp_path, speech_wav, "dnsmos_p808")
    # the P.808 input is the log-mel of the window's first 144000 samples (9.0 s)
    _check_windows(records, "dnsmos-p808", reference["p808"], window=WINDOW - 160)


def _hop_as_chunk(m: dict[str, Any]) -> None:
    """The same model described as 16000 new samples after 128160 of context."""
    m["inputs"][0]["audio"].update(chunk=HOP, context=WINDOW - HOP)
    del m["cadence"]


@pytest.mark.timeout(240)
def test_the_window_described_as_hop_sized_chunks_matches_the_package(
    tmp_path: Path, speech_wav: Path, reference: dict[str, Any]
) -> None:
    records = _run(tmp_path, speech_wav, "dnsmos_sig_bak_ovr", _hop_as_chunk)
    _check_windows(records, "dnsmos", reference["primary"])
