"""Conflict records on scenes where the card and the voice disagree, and on scenes where they agree.

    .venv/bin/python benchmarks/conflict.py [--model DIR] [--split test] [--scenes 40]
                                            [--per-digit 8] [--sweep] [--out FILE]

Scenes are the demo's scripts (`SceneScript.default`: ten digits, each card 1.5 s with
its word spoken as it appears), drawn from material of one held-out split
(`avfuse.data.material`: `--per-digit` cards and utterances a digit from that split's
image sources and espeak-ng voices; "val" to tune, "test" to report). Every scene is
played twice through the real pipeline (SyntheticSource -> Pipeline -> ONNX Runtime,
as fast as it goes): matched, and mismatched, where each item's voice says another
digit than its card (drawn at random, never the same).

A mismatched item is *flagged* when a conflict record overlaps its interval (card and
speech, widened by `TOLERANCE_S`), *flagged right* when that conflict also names the
card's digit as the video label and the spoken one as the audio label. Every conflict
on a matched scene is false; so is one on a mismatched scene that overlaps no item.
False conflicts are counted per minute of matched scene. Also reported: what the fused
decision said for each mismatched item (the card's digit, the voice's, or another):
what late fusion alone shows.

`--sweep` also records both heads' outputs (`report_outputs`) and replays them through
`AgreementMonitor` under a grid of thresholds and durations, to choose the manifest's
`agreement` block on the val split (`choose`: the most mismatches flagged with at most
`MAX_FALSE_PER_MIN_VAL` false conflicts a minute; `--write-agreement` puts it into the
model's manifest.json). Writes benchmarks/results/conflict.json (or --out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.backends import create_backend
from avfuse.bench.env import machine, versions
from avfuse.engine.agreement import AgreementHeads, AgreementMonitor, Observation
from avfuse.engine.model_slot import ModelOptions
from avfuse.engine.pipeline import Pipeline
from avfuse.engine.records import Conflict, Event, Value
from avfuse.engine.sinks import MemorySink
from avfuse.engine.sources.synthetic import SceneScript, SyntheticSource
from avfuse.manifest import AgreementSpec, Manifest, load_manifest

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "avfuse" / "assets" / "embed"
TOLERANCE_S = 0.5
SWEEP_ON = (0.6, 0.7, 0.8, 0.9)
SWEEP_MIN_MS = (100.0, 200.0, 300.0, 500.0)
#: the false-conflict rate a setting may have on val to be chosen (half the goal of 1/min)
MAX_FALSE_PER_MIN_VAL = 0.5


def choose(grid: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The sweep row to ship: most mismatches flagged among those with at most
    `MAX_FALSE_PER_MIN_VAL` false conflicts a minute; then fewer false conflicts, then the
    stricter (higher `on`, longer minimum) setting. None when no row qualifies."""
    ok = [g for g in grid if g["false_per_minute"] <= MAX_FALSE_PER_MIN_VAL]
    if not ok:
        return None
    return max(
        ok,
        key=lambda g: (
            g["flagged_fraction"],
            -g["false_per_minute"],
            g["agreement"]["on"],
            g["agreement"]["min_duration_ms"],
        ),
    )


def scripts(n: int, seed: int) -> list[tuple[SceneScript, SceneScript]]:
    """(matched, mismatched) pairs of scripts: the same scene, the voices changed."""
    out = []
    for k in range(n):
        s = SceneScript.default(seed=seed + k)
        rng = np.random.default_rng([seed, k, 5])
        items = tuple(
            replace(it, speech_label=str((int(it.label) + int(rng.integers(1, 10))) % 10))
            for it in s.items
        )
        out.append((s, replace(s, items=items)))
    return out


def run_scene(be: Any, script: SceneScript, material: Any, *, values: bool) -> list[Any]:
    """Every record of one scene through the real pipeline."""
    sink = MemorySink()
    src = SyntheticSource(script=script, material=material, name="scene")
    opts = {be.manifest.name: ModelOptions(report_outputs=True)} if values else None
    Pipeline(streams=[src], backend=be, sinks=[sink], options=opts).run()
    return sink.records


def _span(t: dict[str, Any]) -> tuple[float, float]:
    return float(t["start"]) - TOLERANCE_S, float(t["end"]) + TOLERANCE_S


def score_scene(conflicts: list[Conflict], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """Flagged / flagged-right mismatched items and false conflicts of one scene."""
    mism = [t for t in truth if "speech_label" in t]
    flagged = right = 0
    used = [False] * len(conflicts)
    for t in mism:
        a, b = _span(t)
        hits = [i for i, c in enumerate(conflicts) if c.start <= b and c.end >= a]
        for i in hits:
            used[i] = True
        flagged += bool(hits)
        right += any(
            conflicts[i].video_label == t["label"] and conflicts[i].audio_label == t["speech_label"]
            for i in hits
        )
    return {"items": len(mism), "flagged": flagged, "right": right, "false": used.count(False)}


def fused_said(events: list[Event], truth: list[dict[str, Any]]) -> dict[str, int]:
    """For each mismatched item, which digit the fused events over it named."""
    out = {"card": 0, "voice": 0, "both": 0, "other": 0, "nothing": 0}
    for t in truth:
        if "speech_label" not in t:
            continue
        a, b = _span(t)
        said = {e.label for e in events if e.start <= b and e.end >= a and e.label != "none"}
        card, voice = t["label"] in said, t["speech_label"] in said
        key = "both" if card and voice else "card" if card else "voice" if voice else None
        out[key or ("other" if said else "nothing")] += 1
    return out


def replay(values: list[Value], heads: AgreementHeads, cfg: AgreementSpec) -> list[Conflict]:
    """The conflicts `cfg` would make from a scene's recorded head outputs."""
    mon = AgreementMonitor(heads=heads, config=cfg, background="none")
    by_time: dict[float, dict[str, np.ndarray]] = {}
    for v in values:
        by_time.setdefault(float(v.stream_time or 0.0), {})[v.output] = np.array(v.values)
    out: list[Conflict] = []
    for t in sorted(by_time):
        row = by_time[t]
        if heads.audio in row and heads.video in row:
            out += mon.push(
                Observation(
                    time_s=t, audio=row[heads.audio], video=row[heads.video],
                    modalities=("audio", "video"),
                )
            )  # fmt: skip
    return out + mon.push(None)


def _totals(rows: list[dict[str, Any]], minutes: float) -> dict[str, Any]:
    items = sum(r["items"] for r in rows if r["kind"] == "mismatched")
    flagged = sum(r["flagged"] for r in rows if r["kind"] == "mismatched")
    right = sum(r["right"] for r in rows if r["kind"] == "mismatched")
    false_matched = sum(r["false"] for r in rows if r["kind"] == "matched")
    false_mism = sum(r["false"] for r in rows if r["kind"] == "mismatched")
    return {
        "mismatched_items": items,
        "flagged": flagged,
        "flagged_right_labels": right,
        "flagged_fraction": round(flagged / max(items, 1), 4),
        "flagged_right_fraction": round(right / max(items, 1), 4),
        "false_conflicts_matched": false_matched,
        "matched_minutes": round(minutes, 2),
        "false_per_minute": round(false_matched / max(minutes, 1e-9), 3),
        "false_conflicts_on_mismatched_scenes": false_mism,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder")
    ap.add_argument("--split", choices=("val", "test"), default="test")
    ap.add_argument("--scenes", type=int, default=40, help="scene pairs (default 40)")
    ap.add_argument("--per-digit", type=int, default=8, help="cards/utterances a digit")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--sweep", action="store_true", help="also replay a grid of settings")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--tuned-on",
        type=Path,
        default=None,
        help="the val run's JSON: its sweep and choice are copied under 'tuning'",
    )
    ap.add_argument(
        "--write-agreement",
        action="store_true",
        help="with --sweep on val: write the chosen agreement block into the model's manifest",
    )
    args = ap.parse_args(argv)
    from avfuse.data.material import split_material

    t0 = time.perf_counter()
    m: Manifest = load_manifest(args.model)
    heads = AgreementHeads.of(m)
    if heads is None:
        raise SystemExit(f"{args.model}: the manifest declares no per-modality heads")
    material = split_material(args.split, per_digit=args.per_digit, seed=args.seed)
    t_material = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    said = {"card": 0, "voice": 0, "both": 0, "other": 0, "nothing": 0}
    recorded: list[tuple[str, list[Value], list[dict[str, Any]], float]] = []
    minutes = 0.0
    with create_backend("ort", threads=1) as be:
        be.load(m)
        for k, pair in enumerate(scripts(args.scenes, args.seed)):
            for kind, script in zip(("matched", "mismatched"), pair, strict=True):
                recs = run_scene(be, script, material, values=args.sweep)
                truth = SyntheticSource(script=script, material=material).truth()
                conflicts = [r for r in recs if isinstance(r, Conflict)]
                row = {"scene": k, "kind": kind, **score_scene(conflicts, truth)}
                row["conflicts"] = [
                    [c.start, c.end, c.video_label, c.audio_label] for c in conflicts
                ]
                rows.append(row)
                if kind == "matched":
                    minutes += script.duration_s / 60
                else:
                    for key, n in fused_said([r for r in recs if isinstance(r, Event)],
                                             truth).items():  # fmt: skip
                        said[key] += n
                if args.sweep:
                    vals = [r for r in recs if isinstance(r, Value)]
                    recorded.append((kind, vals, truth, script.duration_s))
    result: dict[str, Any] = {
        "benchmark": "conflict",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": str(args.model),
        "model_name": m.name,
        "agreement": asdict(m.agreement),
        "split": args.split,
        "scene_pairs": args.scenes,
        "per_digit": args.per_digit,
        "seed": args.seed,
        "tolerance_s": TOLERANCE_S,
        "totals": _totals(rows, minutes),
        "fused_decision_on_mismatched_items": said,
        "wall_s": round(time.perf_counter() - t0, 1),
        "material_wall_s": round(t_material, 1),
        "machine": machine(),
        "versions": versions(),
        "scenes": rows,
    }
    if args.sweep:
        grid = []
        for on in SWEEP_ON:
            for min_ms in SWEEP_MIN_MS:
                cfg = AgreementSpec(on=on, off=round(on - 0.2, 2), min_duration_ms=min_ms,
                                    max_gap_ms=200.0)  # fmt: skip
                srows = []
                for kind, vals, truth, _ in recorded:
                    srows.append({"kind": kind, **score_scene(replay(vals, heads, cfg), truth)})
                grid.append({"agreement": asdict(cfg), **_totals(srows, minutes)})
        result["sweep"] = grid
        best = choose(grid)
        result["chosen"] = best
        if best is not None and args.write_agreement:
            if args.split != "val":
                raise SystemExit("--write-agreement: tune on the val split only (--split val)")
            path = args.model / "manifest.json"
            doc = json.loads(path.read_text())
            doc["agreement"] = best["agreement"]
            path.write_text(json.dumps(doc, indent=2) + "\n")
            print(f"wrote agreement {best['agreement']} into {path}")
    if args.tuned_on is not None:
        val = json.loads(args.tuned_on.read_text())
        keys = ("split", "scene_pairs", "seed", "date", "totals", "chosen", "sweep")
        result["tuning"] = {k: val.get(k) for k in keys}
    out = args.out or RESULTS / "conflict.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    tot = result["totals"]
    print(
        f"{args.split}: {tot['flagged']}/{tot['mismatched_items']} mismatches flagged "
        f"({100 * tot['flagged_fraction']:.1f} %, right labels "
        f"{100 * tot['flagged_right_fraction']:.1f} %), "
        f"{tot['false_conflicts_matched']} false conflicts in {tot['matched_minutes']} min of "
        f"matched scenes ({tot['false_per_minute']}/min); fused decision on mismatched items: "
        f"{said}; {result['wall_s']} s; wrote {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
