"""The zoo report: fusion checks, the README table region, and nothing outside it touched."""

from __future__ import annotations

from avfuse.models.report import TABLE_END, TABLE_START, judge, render_table, update_readme


def _m(fusion, clean, am=None, vm=None, low=None):
    return {
        "fusion": fusion,
        "test": {"clean": clean, "audio_missing": am, "video_missing": vm, "low_snr": low},
        "train_seconds": 120.0,
        "parameters": 150000,
    }


MODELS = {
    "audio": _m("audio", 0.70, None, 0.70, 0.40),
    "video": _m("video", 0.75, 0.75, None, 0.75),
    "hybrid": _m("hybrid", 0.90, 0.73, 0.68, 0.80),
}


def test_judge_passes_a_good_zoo():
    checks = judge(MODELS)
    assert checks["fusion_gain"]["best_fused"] == "hybrid"
    assert checks["fusion_gain"]["points"] == 15.0
    assert checks["missing_modality"]["hybrid/audio_missing"]["points_below"] == 2.0
    assert checks["pass"]


def test_judge_fails_small_gain_and_large_missing_gap():
    models = dict(MODELS, hybrid=_m("hybrid", 0.80, 0.60, 0.69, 0.7))
    checks = judge(models)
    assert not checks["fusion_gain"]["pass"]
    assert not checks["missing_modality"]["hybrid/audio_missing"]["pass"]
    assert checks["missing_modality"]["hybrid/video_missing"]["pass"]
    assert not checks["pass"]


def _report():
    return {
        "models": MODELS,
        "default_model": "hybrid",
        "test_samples": 2000,
        "data_version": "abc",
        "finished": "2026-11-23T19:00:00Z",
        "total_seconds": 600.0,
        "machine": {
            "cpu_count": 2,
            "processor": "x86_64",
            "torch_threads": 2,
            "versions": {"torch": "2.13.0"},
        },
    }


def test_table_lists_every_model_with_dashes_for_undefined():
    table = render_table(_report())
    assert "| hybrid (default) | hybrid | 90.0 | 73.0 | 68.0 | 80.0 |" in table
    assert "| audio | audio | 70.0 | - | 70.0 | 40.0 |" in table


def test_readme_region_is_replaced_and_the_rest_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# avfuse\nintro\n{TABLE_START}\nold table\n{TABLE_END}\nafter\n")
    assert update_readme(readme, render_table(_report()))
    text = readme.read_text()
    assert text.startswith("# avfuse\nintro\n") and text.endswith(f"{TABLE_END}\nafter\n")
    assert "old table" not in text and "hybrid (default)" in text


def test_readme_without_markers_is_left_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# avfuse\n")
    assert not update_readme(readme, "table")
    assert readme.read_text() == "# avfuse\n"
