"""bench/e2e.py's report: ratios to the raw limits, the issue's goals, a Markdown table and a plot."""

from __future__ import annotations

from pathlib import Path

# Raw limits a case's path through Gridline depends on (HTTP in, Kafka out and in, PostgreSQL writes).
CASE_LIMITS = (
    "fastapi_json_post_per_s_wrk",
    "kafka_produce_msgs_per_s",
    "kafka_consume_msgs_per_s",
    "pg_executemany_rows_per_s",
    "pipeline_produce_consume_write_events_per_s",
)
EVENT_LIMITS = (
    "kafka_consume_msgs_per_s",
    "pg_executemany_rows_per_s",
    "pipeline_produce_consume_write_events_per_s",
)
GOAL_CASES_PER_S, GOAL_P99_MS, GOAL_P99_AT, GOAL_PIPELINE_SHARE = 1000, 500, 300, 0.5
CEILING = "cases_per_s_if_all_cores_were_gridlines"


def _smallest(raw: dict, names) -> tuple[str, float]:
    found = {n: raw[n] for n in names if raw.get(n)}
    name = min(found, key=found.__getitem__)
    return name, found[name]


def ratios(results: dict) -> dict:
    """Each Gridline figure divided by the smallest relevant raw limit, and where the goals stand."""
    raw = results["raw_limits"]
    http = raw.get("fastapi_json_post_per_s_wrk") or raw.get("fastapi_json_post_per_s_httpx_client")
    case_name, case_limit = _smallest(raw, CASE_LIMITS)
    event_name, event_limit = _smallest(raw, EVENT_LIMITS)
    pipeline = raw.get("pipeline_produce_consume_write_events_per_s")
    out: dict = {
        "smallest_case_limit": {case_name: case_limit},
        "smallest_event_limit": {event_name: event_limit},
        "steps": [],
    }
    for step in results.get("steps", []):
        out["steps"].append(
            {
                "offered_per_s": step["offered_per_s"],
                "accepted_per_s_vs_http_post": round(step["accepted_per_s"] / http, 4),
                "projected_per_s_vs_smallest": round(step["projected_per_s"] / case_limit, 4),
                "events_per_s_vs_smallest": {
                    k: round(v / event_limit, 4) for k, v in step["events_consumed_per_s"].items()
                },
            }
        )
    steps = results.get("steps", [])
    best = max((s["projected_per_s"] for s in steps), default=0.0)
    replay = results.get("replay") or {}
    if replay.get("end_to_end_cases_per_s"):
        out["replay_end_to_end_vs_smallest"] = round(replay["end_to_end_cases_per_s"] / case_limit, 4)
        best = max(best, replay["end_to_end_cases_per_s"])
    at_goal_rate = next((s for s in steps if s["offered_per_s"] == GOAL_P99_AT), None)
    projection_events = max((s["events_consumed_per_s"].get("projection", 0) for s in steps), default=0)
    out["goals"] = {
        f"sustained end-to-end cases/s (goal ≥ {GOAL_CASES_PER_S})": best,
        f"p99 accept→visible at {GOAL_P99_AT}/s in ms (goal ≤ {GOAL_P99_MS})": _p99_at_goal(at_goal_rate),
        "end-to-end cases/s ÷ raw pipeline events/s (goal ≥ 0.5)": round(best / pipeline, 4)
        if pipeline
        else None,
        "projection events/s ÷ raw pipeline events/s": round(projection_events / pipeline, 4)
        if pipeline
        else None,
    }
    return out


def _p99_at_goal(step: dict | None) -> float | str | None:
    """The goal rate's p99 accept→visible; saturated, the figure says so and what was accepted (the
    latency of a backlog, not of the rate)."""
    if step is None:
        return f"not measured: stepping saturated below {GOAL_P99_AT}/s"
    p99 = (step.get("latency_ms", {}).get("accept_to_visible") or {}).get("p99")
    if not step["saturated"] or p99 is None:
        return p99
    return f"{p99:,.0f} (saturated: {step['accepted_per_s']:,.1f} cases/s accepted of {GOAL_P99_AT} offered)"


def _q(value: dict | None, key: str) -> str:
    return f"{value[key]:,.0f}" if value else "–"


def _per_case(ms: dict) -> str:
    parts = ", ".join(f"{k} {v:g}" for k, v in ms.items() if k not in {"total", CEILING})
    return f"{parts}; total {ms.get('total')} ms → at most {ms.get(CEILING)} cases/s on these cores"


def write_markdown(results: dict, path: Path) -> str:
    """The short table (also printed), with cores and versions."""
    v = results["versions"]
    lines = [
        "# Gridline end to end (bench/e2e.py)",
        "",
        f"{results['started_at']} · **{results['cores']} cores** · Python {v['python']} · "
        f"Kafka {v['kafka']} · PostgreSQL {v['postgresql']} · aiokafka {v['aiokafka']} · "
        f"asyncpg {v['asyncpg']} · "
        f"FastAPI {v['fastapi']} · uvicorn {v['uvicorn']} · load average at start "
        f"{results['loadavg_1_5_15_at_start']} (a shared machine: timings are noisy)",
        *_postgres_settings(results.get("postgres_settings")),
        "",
        "Latencies in ms from the client's 2xx. visible = the projection's applied offset (its tracking "
        "row, written with the read model) passed the case (every case, 100 ms polls); "
        "sample = GET /v1/cases/{id} polled every 200 ms for a few cases." + _warm_up(results.get("warm_up")),
        "",
        "| offered/s | accepted/s | projected/s | visible p50 | p95 | p99 | sample p50 | sample p99 | "
        "dispatch p50 | p95 | p99 | HTTP p99 | saturated |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for s in results.get("steps", []):
        lat = s["latency_ms"]
        vis, smp, dsp = (
            lat["accept_to_visible"],
            lat["accept_to_visible_http_sample"],
            lat["accept_to_dispatch"],
        )
        lines.append(
            f"| {s['offered_per_s']:g} | {s['accepted_per_s']} | {s['projected_per_s']} | {_q(vis, 'p50')} | "
            f"{_q(vis, 'p95')} | {_q(vis, 'p99')} | {_q(smp, 'p50')} | {_q(smp, 'p99')} | {_q(dsp, 'p50')} | "
            f"{_q(dsp, 'p95')} | {_q(dsp, 'p99')} | {_q(lat['http_response'], 'p99')} | "
            f"{'yes' if s['saturated'] else 'no'} |"
        )
    steps = results.get("steps", [])
    if steps:
        names = list(steps[0]["cpu_seconds"])
        lines += ["", "CPU seconds per step (peak memory MB) and events consumed/s:", ""]
        lines.append(
            "| offered/s | " + " | ".join(names) + " | events/s (intake, routing, sla, notify, projection) |"
        )
        lines.append("|---:|" + "---:|" * len(names) + "---|")
        for s in steps:
            cells = [f"{s['cpu_seconds'][n]:.1f} ({s['peak_memory_mb'].get(n, 0)})" for n in names]
            events = ", ".join(f"{s['events_consumed_per_s'].get(n, 0):g}" for n in
                               ("intake", "routing", "sla", "notify", "projection"))  # fmt: skip
            lines.append(f"| {s['offered_per_s']:g} | " + " | ".join(cells) + f" | {events} |")
    if steps:
        lines += ["", "CPU ms per accepted case (steps include their follow-ups):", ""]
        for s in steps:
            lines.append(f"- at {s['offered_per_s']:g}/s: {_per_case(s.get('cpu_ms_per_case', {}))}")
    replay_cpu = (results.get("replay") or {}).get("cpu_ms_per_case")
    if replay_cpu and steps:
        lines.append(f"- replay (new appeals only): {_per_case(replay_cpu)}")
    elif replay_cpu:
        lines += ["", f"CPU ms per case in the replay (new appeals only): {_per_case(replay_cpu)}"]
    if replay := results.get("replay"):
        posted = sum(replay["responses"].values())
        stopped = "" if posted >= replay["cases"] else f" (of {replay['cases']:,}: stopped early)"
        lines += [
            "",
            f"Replay: {posted:,} cases posted{stopped} over {replay['concurrency']} connections: accepted "
            f"{replay['accepted_per_s']}/s; all projected after "
            f"{replay['wall_seconds_until_all_projected']} s "
            f"= {replay['end_to_end_cases_per_s']} cases/s end to end "
            f"(a Zhangqiu year of 600,000 at this rate: {replay['zhangqiu_year_at_this_rate_hours']} h).",
        ]
        scale = results["settings"].get("time_scale", 1.0)
        if scale != 1 and replay["end_to_end_cases_per_s"]:
            district = replay["end_to_end_cases_per_s"] / scale
            lines.append(
                f"Intake's duplicate windows were divided by {scale:g} (--time-scale): at this rate the "
                f"replay met earlier appeals as a district taking {district:.3f} cases/s "
                f"({district * 86400 * 365:,.0f} a year) meets them."
            )
        if "settled_before_replay_s" in results:
            waited = results["settled_before_replay_s"]
            follow_ups = results.get("follow_ups_finished_after_s")
            unfinished = results.get("follow_ups_unfinished", 0)
            lines.append(
                f"It started once the steps' follow-ups had finished ({follow_ups} s, {unfinished} left "
                f"unfinished) and every consumer group had read the case log to its end ({waited} s more)."
                if waited is not None
                else "The last step's backlog was not consumed within the wait; the replay ran behind it."
            )
        if pg := replay.get("postgres_statements"):
            lines += ["", *_statements(pg, "during the replay", "case")]
        if store := replay.get("storage"):
            biggest = ", ".join(
                f"{table} {size:,}" for table, size in list(store["bytes_per_case"].items())[:6]
            )
            trimmed = ", ".join(f"{table} {days:g} d" for table, days in store["keep_days"].items())
            lines += [
                "",
                f"Storage: the replay added {store['total_bytes_per_case']:,} bytes per case on disk (tables "
                f"with their indexes; the largest: {biggest}). A Zhangqiu year ({store['year_cases']:,} "
                f"cases) at this rate: {store['year_gb']} GB with housekeeping ({trimmed}), "
                f"{store['year_gb_without_housekeeping']} GB without. The tables now hold "
                f"{store['held_bytes_per_case']:,} bytes per case received ({store['held_cases']:,} cases; "
                "dead row versions not yet vacuumed included).",
            ]
        if log := replay.get("wal"):
            lines += [
                "",
                f"Write-ahead log: {log['bytes_per_case']:,} bytes per case ({log['records_per_case']} "
                f"records, {log['full_page_images_per_case']} full-page images; {log['checkpoints']} "
                "checkpoints during the replay).",
            ]
        lines += _row_writes(replay.get("row_writes"))
        if sent := replay.get("deliveries"):
            lines += ["", _deliveries(sent)]
        if drain := replay.get("notify_drain"):
            lines += ["", _drain(drain)]
            if pg := drain.get("postgres_statements"):
                lines += ["", *_statements(pg, "while notify alone sent", "message")]
        if pauses := replay.get("gc_pauses"):
            lines += ["", f"Garbage collection during the replay (gridline_gc_pause_seconds): {_gc(pauses)}."]
        lines += _progress(replay.get("progress") or [])
    if raw := results.get("raw_limits"):
        lines += ["", "Raw limits, same Kafka and PostgreSQL, same run:", ""]
        lines += [
            f"- {k}: {value:,}" if isinstance(value, int | float) else f"- {k}: {value}"
            for k, value in raw.items()
        ]
    if r := results.get("ratios"):
        lines += ["", f"Smallest raw limit for a case: {r['smallest_case_limit']}; for an event: "
                  f"{r['smallest_event_limit']}.", ""]  # fmt: skip
        for s in r["steps"]:
            lines.append(
                f"- at {s['offered_per_s']:g}/s: accepted/HTTP-POST limit "
                f"{s['accepted_per_s_vs_http_post']:.2%}, "
                f"projected/smallest {s['projected_per_s_vs_smallest']:.2%}, events/s per service ÷ smallest "
                + ", ".join(f"{k} {x:.2%}" for k, x in s["events_per_s_vs_smallest"].items())
            )
        if "replay_end_to_end_vs_smallest" in r:
            lines.append(f"- replay end to end ÷ smallest: {r['replay_end_to_end_vs_smallest']:.2%}")
        lines += ["", "Goals of issue 10:", ""]
        lines += [f"- {k}: {value}" for k, value in r["goals"].items()]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def plot(results: dict, path: Path) -> bool:
    """Latency against offered load (left) and throughput against offered load (right); False (and no
    file) for a run without steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = results.get("steps", [])
    if not steps:
        return False
    offered = [s["offered_per_s"] for s in steps]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, label, style in (("accept_to_visible", "accept→visible", "-"),
                               ("accept_to_dispatch", "accept→dispatch", "--")):  # fmt: skip
        for q, marker in (("p50", "o"), ("p95", "s"), ("p99", "^")):
            ys = [(s["latency_ms"][name] or {}).get(q) for s in steps]
            points = [(x, y) for x, y in zip(offered, ys, strict=True) if y is not None]
            if points:
                left.plot(*zip(*points, strict=True), style, marker=marker, label=f"{label} {q}")
    left.axhline(GOAL_P99_MS, color="grey", linewidth=0.8, linestyle=":", label=f"goal p99 {GOAL_P99_MS} ms")
    left.set(xlabel="offered cases/s", ylabel="latency (ms, log)", yscale="log", title="Latency")
    left.legend(fontsize=7)
    right.plot(offered, [s["accepted_per_s"] for s in steps], "o-", label="accepted/s")
    right.plot(offered, [s["projected_per_s"] for s in steps], "s-", label="projected/s")
    right.plot(offered, offered, ":", color="grey", label="offered")
    right.set(xlabel="offered cases/s", ylabel="cases/s", title="Throughput")
    right.legend(fontsize=7)
    v = results["versions"]
    fig.suptitle(
        f"Gridline end to end · {results['cores']} cores · Kafka {v['kafka']} · "
        f"PostgreSQL {v['postgresql']} · Python {v['python']} · {results['started_at']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _row_writes(rows: list[dict] | None) -> list[str]:
    """The tables whose writes made the most index entries per case (runs before it was recorded: none)."""
    if not rows:
        return []
    lines = [
        "",
        "Rows written per case (pg_stat_user_tables; HOT = updated in place, no new index entries; index "
        "entries = (inserted + updated − HOT) × indexes, an estimate):",
        "",
        "| table | inserted | updated | HOT | deleted | indexes | index entries |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['table']} | {r['inserted']} | {r['updated']} | {r['hot']} | {r['deleted']} | {r['indexes']} | "
        f"{r['index_entries']} |"
        for r in rows
    ]
    return lines


def _postgres_settings(settings: dict[str, str] | None) -> list[str]:
    """PostgreSQL's write-path settings of the run, as a line (runs before they were recorded: none)."""
    if not settings:
        return []
    return ["", "PostgreSQL: " + " · ".join(f"{name} {value}" for name, value in settings.items())]


def _progress(intervals: list[dict], rows: int = 24) -> list[str]:
    """The replay's progress as a table (at most ``rows`` intervals, evenly chosen, the last always):
    whether it slowed down as the tables grew, and which process then took more per case."""
    if len(intervals) < 2:
        return []
    step = -(-len(intervals) // rows)
    chosen = intervals[::-1][::step][::-1]
    names = [n for n in (chosen[-1]["cpu_ms_per_projected_case"] or {}) if n != "gridline"]
    lines = [
        "",
        f"Progress of the replay ({len(intervals)} intervals; projected/s and CPU over each interval, "
        "cases and database size at its end):",
        "",
        "| minute | accepted | projected | accepted/s | projected/s | cores (Gridline) | "
        "CPU ms/case Gridline | " + " | ".join(names) + " | databases GB |",
        "|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(names) + "---:|",
    ]
    for i in chosen:
        cpu = i["cpu_ms_per_projected_case"] or {}
        cells = " | ".join(f"{cpu[n]:g}" if n in cpu else "–" for n in names)
        lines.append(
            f"| {i['until_s'] / 60:.1f} | {i['accepted']:,} | {i['projected']:,} | {i['accepted_per_s']} | "
            f"{i['projected_per_s']} | {i['cores_gridline']} | {cpu.get('gridline', '–')} | {cells} | "
            f"{i['database_bytes'] / 1e9:.2f} |"
        )
    return lines


def _deliveries(d: dict) -> str:
    """Notify's side of the replay: the end-to-end rate counts projected cases, not messages sent."""
    return (
        f"Notifications: the replay queued {d['queued_per_case']} a case and notify sent {d['sent']:,} "
        f"while it ran ({d['sent_per_s']:,}/s); when it ended {d['left_due']:,} were due and not yet sent "
        f"(the oldest due for {d['oldest_due_s']:,.0f} s), {d['left_not_due']:,} pending but not due "
        f"({d['left_for_quiet_hours']:,} of them citizen SMS held for quiet hours), {d['failed']:,} failed."
    )


def _statements(pg: dict, during: str, unit: str) -> list[str]:
    """pg_stat_statements over a phase (``_pgstat.top`` with its count of ``unit``s): totals, then the
    statements that took the most."""
    return [
        f"PostgreSQL {during} (pg_stat_statements): {pg['calls_per_case']} statements and "
        f"{pg['exec_ms_per_case']} ms of execution per {unit}; connections opened: "
        f"{pg['sessions_opened']}; the statements that took the most:",
        "",
        f"| database | statement | calls/{unit} | rows/call | ms/{unit} | share |",
        "|---|---|---:|---:|---:|---:|",
        *(
            f"| {t['database']} | `{t['statement'].replace('|', '/')}` | {t['calls_per_case']} | "
            f"{t['rows_per_call']} | {t['exec_ms_per_case']} | {t['share']:.0%} |"
            for t in pg["top"]
        ),
    ]


def _drain(d: dict) -> str:
    """The stretch after the last case was projected, until notify had sent every message due."""
    cpu = ", ".join(f"{name} {ms}" for name, ms in d["cpu_ms_per_message"].items() if ms >= 0.05)
    if d["left_outstanding"]:
        ending = (
            f"after {d['seconds']:,} s, {d['left_outstanding']:,} were still to send and none had gone for "
            "60 s: not all notified."
        )
    else:
        ending = (
            f"every case projected and every message due sent after {d['wall_seconds_until_all_notified']:,} "
            f"s = {d['end_to_end_notified_cases_per_s']:,} cases/s end to end, told and not only visible."
        )
    return (
        f"Then notify alone: {d['sent']:,} messages sent in {d['seconds']:,} s ({d['sent_per_s']:,}/s, "
        f"{d['failed']:,} failed), CPU ms a message: {cpu}; {ending}"
    )


def _gc(pauses: dict[str, dict]) -> str:
    parts = []
    for service, p in pauses.items():
        longest = f", longest ≤ {p['longest_ms_at_most']} ms" if p["longest_ms_at_most"] is not None else ""
        counts = f"{p['collections']} collections ({p['full']} full)"
        parts.append(f"{service} {counts}, {p['pause_ms']} ms{longest}")
    return "; ".join(parts)


def _warm_up(warm_up: dict | None) -> str:
    if not warm_up:
        return " No warm-up before the steps: the first ones include a fresh system's first minute."
    return (
        f" Before the steps, a warm-up of {warm_up['seconds']:g} s at {warm_up['rate']:g} cases/s "
        f"({warm_up['accepted']} cases with their follow-ups; not measured)."
    )
