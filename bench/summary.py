"""One table of the headline figures of the last benchmark runs, read from bench/results/*.json, each beside its
target; written to bench/results/summary.json. Run by `make bench` after the benchmarks (or alone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
Row = dict[str, Any]


def _load(name: str) -> Any:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _row(bench: str, backend: str, metric: str, value: Any, target: str = "", met: bool | None = None) -> Row:
    return {"bench": bench, "backend": backend, "metric": metric, "value": value, "target": target, "met": met}


def _import_rows(data: Any) -> list[Row]:
    out = []
    for r in data.get("results", []):
        b = r["backend"]
        out.append(_row("finess import", b, "seconds (95k EG)", r["seconds"], "≤ 30", r["seconds"] <= 30))
        out.append(_row("finess import", b, "re-import seconds", r["reimport_seconds"]))
        out.append(_row("finess import", b, "peak RSS MB", r["peak_rss_mb"]))
    return out


def _capacity_rows(data: Any) -> list[Row]:
    out = []
    for r in data.get("results", []):
        b = f"{r['backend']} ×{r['workers']}"
        single = r["single_patch_per_s"]
        bulk = max(r["bulk_updates_per_s"], r.get("bulk_own_units_updates_per_s", 0))
        out.append(_row("capacity feed", b, "single PATCH/s", single, "≥ 300", single >= 300))
        out.append(_row("capacity feed", b, "PATCH p95 ms", r["single_p95_ms"]))
        out.append(_row("capacity feed", b, "bulk indicator updates/s", bulk, "≥ 1,000", bulk >= 1000))
        out.append(_row("capacity feed", b, "write → SSE p95 ms", r.get("sse_after_send_p95_ms")))
    return out


def _short(r: Row) -> str:
    return str(r["query"]).split(" ")[0]


def _search_rows(data: Any) -> list[Row]:
    by_backend: dict[str, list[Row]] = {}
    for r in data.get("results", []):
        by_backend.setdefault(r["backend"], []).append(r)
    out = []
    for b, rows in by_backend.items():
        worst = max(rows, key=lambda r: r["api_p95_ms"])
        ratio = max(rows, key=lambda r: r.get("ratio_p50") or 0)
        core = max(rows, key=lambda r: r.get("core_ratio_p50") or 0)
        p95 = worst["api_p95_ms"]
        out.append(
            _row("search (IG queries)", b, f"worst p95 ms ({worst['query'][:3].strip()})", p95, "≤ 50", p95 <= 50)
        )
        r50 = ratio.get("ratio_p50")
        out.append(
            _row("search (IG queries)", b, f"worst api/SQL ({ratio['query'][:3].strip()})", r50, "≤ 2", r50 <= 2)
        )
        c50 = core.get("core_ratio_p50")
        out.append(
            _row("search (IG queries)", b, f"worst core/SQL ({core['query'][:3].strip()})", c50, "≤ 2", c50 <= 2)
        )
    return out


def _pages_rows(data: Any) -> list[Row]:
    backend = "postgresql" if str(data.get("database", "")).startswith("postgresql") else "sqlite"
    pages = data.get("pages") or []
    if not pages:
        return []
    worst = max(pages, key=lambda p: p["p95_ms"])
    target = data.get("target_ms", 300)
    p95 = round(worst["p95_ms"], 1)
    return [
        _row("web pages", backend, f"worst p95 ms ({worst['page'].split(' ')[0]})", p95, f"≤ {target:g}", p95 <= target)
    ]


def summary() -> list[Row]:
    rows: list[Row] = []
    for name, build in (
        ("finess_import", _import_rows),
        ("capacity", _capacity_rows),
        ("search", _search_rows),
        ("pages", _pages_rows),
    ):
        data = _load(name)
        if data is not None:
            rows += build(data)
            speed = (data.get("machine_speed") or {}) if isinstance(data, dict) else {}
            if speed:  # figures of runs on machines of different speeds are not comparable without it
                value = f"{speed.get('reference_loop_s')} s"
                rows.append(_row(name, "-", "machine: reference loop (load)", f"{value} ({speed.get('load_1min')})"))
    return rows


def main() -> None:
    rows = summary()
    print(f"\n{'benchmark':<20} {'backend':<14} {'metric':<34} {'value':>9}  {'target':<8} met")
    for r in rows:
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        print(f"{r['bench']:<20} {r['backend']:<14} {r['metric']:<34} {r['value']!s:>9}  {r['target']:<8} {met}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
