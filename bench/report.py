"""Turn the benchmark rows into ratios against the targets, report.md and report.png."""

from __future__ import annotations

import statistics
from pathlib import Path

import paired

REF = "c=16"  # the load the DESIGN.md floor numbers were measured at
FLOOR = paired.FLOOR
# the targets against the floor, checked on the single runs and on the paired rounds:
# (name, Crossroads' leg, field, target, higher is better)
FLOOR_RATIOS = (
    ("throughput vs floor", ("crossroads", "openai-json"), "rps", "≥0.7x", True),
    ("CPU/request vs floor", ("crossroads", "openai-json"), "cpu_us_per_req", "≤1.4x", False),
    ("CPU/request dynamic route vs floor", ("crossroads", "dynamic-route"), "cpu_us_per_req",
     "≤1.6x", False),
)


def _meets(value: float, target: str, higher_is_better: bool) -> bool:
    limit = float(target.strip("≥≤<> x"))
    return value >= limit if higher_is_better else value <= limit


def find(rows: list[dict], system: str, scenario: str, load: str, ok_only: bool = True):
    for row in rows:
        if (row["system"], row["scenario"], row["load"]) == (system, scenario, load):
            if ok_only and row["status"] != "ok":
                return None
            return row
    return None


def _why(rows, system, scenario, load) -> str:
    row = find(rows, system, scenario, load, ok_only=False)
    if row is None:
        return f"{system}/{scenario}/{load} not run"
    return f"{system}/{scenario}/{load}: {row['status'][:140]}"


def _ratio_check(rows, name, num, den, field, target, higher_is_better, load=REF):
    a = find(rows, *num, load)
    b = find(rows, *den, load)
    check = {"name": name, "target": target, "value": None, "pass": None, "detail": ""}
    if a is None or b is None or not a.get(field) or not b.get(field):
        missing = num if a is None or not a.get(field) else den
        check["detail"] = "n/a: " + _why(rows, *missing, load)
        return check
    value = a[field] / b[field]
    check["value"] = round(value, 3)
    check["pass"] = _meets(value, target, higher_is_better)
    check["detail"] = f"{a[field]:,.1f} / {b[field]:,.1f} {field} at {load}"
    return check


def added_latency(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        if row["load"] != "c=1" or row["status"] != "ok" or row["system"] == "standin-direct":
            continue
        base_key = "openai-sse" if row.get("stream") else "openai-json"
        base = find(rows, "standin-direct", base_key, "c=1")
        if base is None:
            continue
        out.append(
            {
                "system": row["system"],
                "scenario": row["scenario"],
                "p50_added_ms": round(row["p50_ms"] - base["p50_ms"], 3),
                "p99_added_ms": round(row["p99_ms"] - base["p99_ms"], 3),
            }
        )
    return out


def paired_checks(paired_rows: list[dict]) -> list[dict]:
    """The floor ratios again, each the median of the paired rounds' own ratios."""
    out = []
    for name, leg, field, target, higher in FLOOR_RATIOS:
        per_round = paired.ratios(paired_rows, leg, field)
        median = round(statistics.median(per_round), 3) if per_round else None
        check = {"name": f"{name} (paired rounds, median)", "target": target,
                 "value": median, "pass": None, "detail": "n/a: no complete round"}
        if median is not None:
            check["pass"] = _meets(median, target, higher)
            check["detail"] = "rounds: " + ", ".join(f"{x:.3f}" for x in per_round)
        out.append(check)
    return out


def summarize(rows: list[dict], paired_rows: list[dict] | None = None) -> dict:
    cr, fl = ("crossroads", "openai-json"), FLOOR
    checks = [
        *(_ratio_check(rows, name, leg, fl, field, target, higher)
          for name, leg, field, target, higher in FLOOR_RATIOS),
        _ratio_check(
            rows, "throughput vs Portkey", cr, ("portkey", "openai-json"), "rps", "≥5x", True
        ),
        _ratio_check(
            rows, "throughput vs LiteLLM", cr, ("litellm", "openai-json"), "rps", "≥50x", True
        ),
        _ratio_check(
            rows,
            "streams/s vs floor",
            ("crossroads", "openai-sse"),
            ("floor", "openai-sse"),
            "rps",
            "≥0.6x",
            True,
        ),
    ]
    added = {(a["system"], a["scenario"]): a for a in added_latency(rows)}
    a_cr, a_fl = added.get(cr), added.get(fl)

    def missing_added() -> str:
        if find(rows, "standin-direct", "openai-json", "c=1") is None:
            return _why(rows, "standin-direct", "openai-json", "c=1")
        return _why(rows, *(cr if not a_cr else fl), "c=1")

    check = {"name": "added latency p50 vs floor (c=1)", "target": "≤1.3x", "value": None,
             "pass": None, "detail": ""}  # fmt: skip
    if a_cr and a_fl and a_fl["p50_added_ms"] > 0:
        check["value"] = round(a_cr["p50_added_ms"] / a_fl["p50_added_ms"], 3)
        check["pass"] = check["value"] <= 1.3
        check["detail"] = f"{a_cr['p50_added_ms']:.3f} ms vs {a_fl['p50_added_ms']:.3f} ms"
    else:
        check["detail"] = "n/a: " + missing_added()
    checks.append(check)
    check = {"name": "added latency p99 (c=1)", "target": "<1 ms", "value": None,
             "pass": None, "detail": ""}  # fmt: skip
    if a_cr:
        check["value"] = a_cr["p99_added_ms"]
        check["pass"] = a_cr["p99_added_ms"] < 1.0
        check["detail"] = f"floor: {a_fl['p99_added_ms']:.3f} ms" if a_fl else ""
        if a_fl and a_fl["p99_added_ms"] >= 1.0:  # not attainable here by anything on this path
            check["detail"] += " (over 1 ms itself: the machine's jitter, not the gateway's)"
    else:
        check["detail"] = "n/a: " + missing_added()
    checks.append(check)
    if paired_rows:
        checks += paired_checks(paired_rows)
    return {"checks": checks, "added_latency": list(added.values())}


# ------------------------------------------------------------------ markdown


def _f(value, fmt="{:,.1f}") -> str:
    return "–" if value is None else fmt.format(value)


def _mark(passed) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def _noise_warning(rows: list[dict]) -> list[str]:
    noisy = [r for r in rows if "noisy:" in (r.get("note") or "")]
    if not noisy:
        return []
    worst = max(r.get("other_cpu_core0_pct") or 0 for r in noisy)
    return [
        f"**Warning: {len(noisy)} of {len(rows)} runs were disturbed** by other processes on the "
        f"machine (up to {worst:.0f}% of the server core went to them; see the notes column). "
        "Their numbers understate the systems; re-run on a quiet machine before trusting ratios.",
        "",
    ]


def markdown(data: dict) -> str:
    meta, rows, summary = data["meta"], data["rows"], data["summary"]
    s = meta["settings"]
    lines = [
        f"# Crossroads benchmark — {meta['started']}",
        "",
        f"Commit `{meta['commit']}` · {meta['host']['cpus']} CPUs ({meta['host']['cpu']}), "
        f"kernel {meta['host']['kernel']} · {meta['nginx']} · {meta['wrk']} · "
        f"Python {meta['python']} · took {meta.get('elapsed_s', '?')} s",
        "",
        *([f"**{meta['interrupted']}**", ""] if meta.get("interrupted") else []),
        f"Each closed-loop run: {s['warmup_s']:g} s warm-up, then {s['duration_s']:g} s measured "
        f"(wrk, 1 thread). Fixed-rate run: {s['rate']:g} req/s for {s['duration_s']:g} s, "
        "latency from the intended send time. Systems on core 0; wrk and the nginx stand-in "
        "on core 1 (crossroads-w2: gateway on cores 0–1, sharing core 1 with wrk and nginx). "
        "CPU is the server process tree's user+system time over the measured run, until "
        "the tree has gone quiet after it, divided by requests served; RSS is the tree's "
        "total after the run.",
        "",
        *_noise_warning(rows),
        "## Targets",
        "",
        "| check | target | value | result | detail |",
        "|---|---|---:|---|---|",
    ]
    for c in summary["checks"]:
        lines.append(
            f"| {c['name']} | {c['target']} | {_f(c['value'], '{:.3f}')} | {_mark(c['pass'])} "
            f"| {c['detail']} |"
        )
    if data.get("paired"):
        lines += [
            "",
            "The *paired* rows measure the floor, Crossroads' compat endpoint and its dynamic "
            "route in turns, round after round, with both servers running (one loaded at a "
            "time): each round's ratios are taken within a minute, so a machine whose speed "
            "drifts over the run skews them less than the single runs below, measured minutes "
            "apart. *Core speed* is how long a fixed piece of pure-Python work took on the "
            "server core just before the run (lower is faster): where it moves, the machine's "
            "speed moved with it.",
            "",
            "| round | system | scenario | req/s | CPU µs/req | p99 ms | core speed ms "
            "| status |",
            "|---:|---|---|---:|---:|---:|---:|---|",
        ]
        for r in data["paired"]:
            lines.append(
                f"| {r['round']} | {r['system']} | {r['scenario']} | {_f(r.get('rps'))} "
                f"| {_f(r.get('cpu_us_per_req'))} | {_f(r.get('p99_ms'), '{:.3f}')} "
                f"| {_f(r.get('calibration_ms'))} | {r['status'][:120]} |"
            )
    lines += [
        "",
        "## Results",
        "",
        "| system | scenario | load | req/s | p50 ms | p90 ms | p99 ms | CPU µs/req "
        "| RSS MiB | status | notes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        status = r["status"].replace("|", "/").replace("\n", " ")[:200]
        note = (r.get("note") or "").replace("|", "/")[:160]
        lines.append(
            f"| {r['system']} | {r['scenario']} | {r['load']} | {_f(r.get('rps'))} "
            f"| {_f(r.get('p50_ms'), '{:.3f}')} | {_f(r.get('p90_ms'), '{:.3f}')} "
            f"| {_f(r.get('p99_ms'), '{:.3f}')} | {_f(r.get('cpu_us_per_req'))} "
            f"| {_f(r.get('rss_mib'))} | {status} | {note} |"
        )
    lines += [
        "",
        "Streaming scenarios (`*-sse`): req/s is streams/s (each a 20-chunk stream with a "
        "usage chunk).",
        "",
        "## Added latency at c=1 (minus standin-direct, same JSON/SSE mode)",
        "",
        "| system | scenario | p50 added ms | p99 added ms |",
        "|---|---|---:|---:|",
    ]
    for a in summary["added_latency"]:
        lines.append(
            f"| {a['system']} | {a['scenario']} | {a['p50_added_ms']:.3f} "
            f"| {a['p99_added_ms']:.3f} |"
        )
    bad = [r for r in rows if r["status"] != "ok"]
    lines += ["", "## Failed or not measured", ""]
    seen = set()
    for r in bad:
        key = (r["system"], r["scenario"], r["status"])
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"- **{r['system']} / {r['scenario']}** ({r['load']}): {r['status'][:300]}")
    if not bad:
        lines.append("Nothing: every scenario ran without errors.")
    lines += ["", "![requests per second](report.png)", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ chart


def chart(rows: list[dict], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"no chart: {e}"
    groups: dict[str, dict[str, float]] = {}
    loads: list[str] = []
    for r in rows:
        if r["status"] != "ok" or not r.get("rps") or not r["load"].startswith("c="):
            continue
        groups.setdefault(f"{r['system']}\n{r['scenario']}", {})[r["load"]] = r["rps"]
        if r["load"] not in loads:
            loads.append(r["load"])
    if not groups:
        return "no chart: no successful runs"
    loads.sort(key=lambda x: int(x[2:]))
    names = list(groups)
    width = 0.8 / max(1, len(loads))
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(names)), 5.5))
    for i, load in enumerate(loads):
        xs = [n + (i - (len(loads) - 1) / 2) * width for n in range(len(names))]
        ys = [groups[name].get(load, 0) for name in names]
        bars = ax.bar(xs, ys, width, label=load)
        for bar, y in zip(bars, ys, strict=True):
            if y:
                ax.annotate(f"{y:,.0f}", (bar.get_x() + bar.get_width() / 2, y),
                            ha="center", va="bottom", fontsize=6, rotation=90)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylabel("requests/s (streams/s for *-sse), log scale")
    ax.set_title("Crossroads benchmark: throughput per system / scenario")
    ax.legend(title="connections")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write(out: Path, data: dict) -> None:
    problem = chart(data["rows"], out / "report.png")
    text = markdown(data)
    if problem:
        text = text.replace("![requests per second](report.png)", f"({problem})")
    (out / "report.md").write_text(text)
