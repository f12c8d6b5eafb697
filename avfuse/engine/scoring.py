"""Scoring recognised events against a scene's ground truth.

A scripted digit counts as recognised when an event with its label overlaps its
interval, widened by `tolerance_s` on both sides (smoothing and the model's window
move events a little in time). An event that overlaps no scripted digit of its
label is a false event. The demo, the end-to-end tests and the benchmarks share this
one definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from avfuse.engine.records import Record

__all__ = ["score_events"]


def _overlaps(ev: Mapping[str, Any], tr: Mapping[str, Any], tol: float) -> bool:
    return float(ev["start"]) <= float(tr["end"]) + tol and float(ev["end"]) >= (
        float(tr["start"]) - tol
    )


def _events_only(records: Iterable[Record | Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Keep event records (a JSONL stream also carries warnings, faults, summaries)."""
    dicts = [r.to_dict() if isinstance(r, Record) else r for r in records]
    return [r for r in dicts if r.get("type", "event") == "event" and r.get("label") != "none"]


def score_events(
    events: Sequence[Record | Mapping[str, Any]],
    truth: Sequence[Mapping[str, Any]],
    *,
    tolerance_s: float = 0.5,
) -> dict[str, Any]:
    """Compare events with ground truth.

    Args:
        events: event records (typed `Event`s, or their JSON form {"label", "start",
            "end", ...}, stream seconds); other records and "none" labels are ignored.
        truth: ground-truth records ({"label", "start", "end"}, stream seconds), e.g.
            `SyntheticSource.truth()` or the JSON that `render_scene_to_file` writes.
        tolerance_s: how far outside a scripted interval an event may lie and still match.

    Returns:
        {"recall", "precision", "f1", "n_truth", "n_recognised", "n_events",
        "n_matched_events", "n_false", "n_duplicates", "per_digit": [...],
        "false_events": [...]}; per_digit has, per scripted digit, its label, interval,
        whether it was recognised, the matching events' count, the labels of other
        events overlapping it (confusions) and `delay_s` (first match start - truth start).
    """
    if tolerance_s < 0:
        raise ValueError(f"tolerance_s={tolerance_s} is negative: give 0 or more seconds")
    evs = _events_only(events)
    matched_event = [False] * len(evs)
    per_digit = []
    n_recognised = n_duplicates = 0
    for tr in truth:
        label = str(tr["label"])
        hits = [
            i
            for i, ev in enumerate(evs)
            if str(ev["label"]) == label and _overlaps(ev, tr, tolerance_s)
        ]
        others = sorted(
            {str(ev["label"]) for ev in evs if str(ev["label"]) != label and _overlaps(ev, tr, 0.0)}
        )
        for i in hits:
            matched_event[i] = True
        first = min((float(evs[i]["start"]) for i in hits), default=None)
        if hits:
            n_recognised += 1
            n_duplicates += len(hits) - 1
        per_digit.append(
            {
                "label": label,
                "start": float(tr["start"]),
                "end": float(tr["end"]),
                "recognised": bool(hits),
                "events": len(hits),
                "confused_with": others,
                "delay_s": None if first is None else round(first - float(tr["start"]), 4),
            }
        )
    false_events = [dict(ev) for ev, m in zip(evs, matched_event, strict=True) if not m]
    n_matched = sum(matched_event)
    recall = n_recognised / len(truth) if truth else 0.0
    precision = n_matched / len(evs) if evs else 0.0
    f1 = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
    return {
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "n_truth": len(truth),
        "n_recognised": n_recognised,
        "n_events": len(evs),
        "n_matched_events": n_matched,
        "n_false": len(false_events),
        "n_duplicates": n_duplicates,
        "per_digit": per_digit,
        "false_events": false_events,
    }
