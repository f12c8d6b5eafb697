"""`avfuse bench --compare A.json B.json`: ratios B/A and regressions beyond noise.

Entries are matched by (scenario, level, variant label, batch). For each matched
pair the ratio of medians over repeats is computed: p50/p90/p99 latency for the
latency scenarios, throughput for offline. A change is flagged only when it is
larger than the noise: the ratio must pass max(`tolerance`, the sum of the two
runs' relative repeat spreads) *and* the repeat ranges must not overlap (B's best
repeat worse than A's worst), so one unlucky number never flags.
"""

from __future__ import annotations

from typing import Any

DEFAULT_TOLERANCE = 0.10


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["scenario"], r["level"], r["label"], r.get("batch"))


def _verdict(a: dict[str, Any], b: dict[str, Any], tol: float, higher_better: bool) -> str:
    """ "regression", "improvement" or "" (within noise) from two repeat spreads."""
    if a.get("median") is None or b.get("median") is None or a["median"] <= 0:
        return ""
    ratio = b["median"] / a["median"]
    noise = max(tol, (a.get("rel_spread") or 0.0) + (b.get("rel_spread") or 0.0))
    worse = ratio < 1 - noise if higher_better else ratio > 1 + noise
    better = ratio > 1 + noise if higher_better else ratio < 1 - noise
    if higher_better:
        worse = worse and b["max"] < a["min"]
        better = better and b["min"] > a["max"]
    else:
        worse = worse and b["min"] > a["max"]
        better = better and b["max"] < a["min"]
    return "regression" if worse else "improvement" if better else ""


def compare(a: dict[str, Any], b: dict[str, Any], *, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Matched entries with ratios (B/A) and verdicts; also what only one side has."""
    ia = {_key(r): r for r in a["results"] if r["status"] == "ok"}
    ib = {_key(r): r for r in b["results"] if r["status"] == "ok"}
    rows = []
    for k in [k for k in ia if k in ib]:
        ra, rb = ia[k], ib[k]
        row: dict[str, Any] = {
            "scenario": k[0],
            "level": k[1],
            "label": k[2],
            "batch": k[3],
            "ratios": {},
            "verdicts": {},
        }
        metrics = ("throughput_per_s",) if k[0] == "offline" else ("p50", "p90", "p99")
        for metric in metrics:
            sa, sb = ra["spread"].get(metric, {}), rb["spread"].get(metric, {})
            if sa.get("median") and sb.get("median") is not None:
                row["ratios"][metric] = sb["median"] / sa["median"]
                row["verdicts"][metric] = _verdict(sa, sb, tolerance, metric == "throughput_per_s")
        rows.append(row)
    return {
        "rows": rows,
        "only_in_a": [" / ".join(map(str, k)) for k in ia if k not in ib],
        "only_in_b": [" / ".join(map(str, k)) for k in ib if k not in ia],
        "regressions": sum(1 for r in rows if "regression" in r["verdicts"].values()),
        "same_machine": a["machine"].get("cpu") == b["machine"].get("cpu"),
        "tolerance": tolerance,
    }


def format_comparison(c: dict[str, Any], name_a: str, name_b: str) -> str:
    """Plain-text ratio table (B/A; latency < 1 and throughput > 1 are better)."""
    lines = [
        f"B/A ratios: A={name_a}  B={name_b}  (latency: <1 faster; throughput: >1 faster; "
        f"flagged only past max({100 * c['tolerance']:.0f}%, repeat spread) with "
        "non-overlapping repeats)"
    ]
    if not c["same_machine"]:
        lines.append("warning: the two runs were measured on different CPUs")
    cols = " ".join(f"{c:>7}" for c in ("p50", "p90", "p99", "thr"))
    head = f"{'scenario':<14} {'variant':<32} {'batch':>5} {cols}  flag"
    lines += [head, "-" * len(head)]
    for r in c["rows"]:
        cells = [
            f"{r['ratios'][m]:7.3f}" if m in r["ratios"] else f"{'-':>7}"
            for m in ("p50", "p90", "p99", "throughput_per_s")
        ]
        flags = sorted({v for v in r["verdicts"].values() if v})
        bad = [m for m, v in r["verdicts"].items() if v == "regression"]
        flag = "REGRESSION (" + ", ".join(bad) + ")" if bad else ", ".join(flags)
        lines.append(
            f"{r['scenario']:<14} {r['label']:<32} {str(r['batch'] or '-'):>5} "
            f"{' '.join(cells)}  {flag}"
        )
    for side, keys in (("A", c["only_in_a"]), ("B", c["only_in_b"])):
        if keys:
            lines.append(f"only in {side}: {', '.join(keys)}")
    lines.append(f"{c['regressions']} regression(s) beyond noise")
    return "\n".join(lines)
