"""summary.json over every scenario's report.json, and the section of BENCHMARKS.md between
<!-- scenarios:begin --> and <!-- scenarios:end --> (created, under a heading "Reload under load, faults
and baselines", at the end of the file when the markers are missing; nothing else of the file changes)."""

import json
import shutil
import time

BEGIN, END = "<!-- scenarios:begin -->", "<!-- scenarios:end -->"
HEADING = "## Reload under load, faults and baselines"
BASELINES = ("close-then-init", "restart")
BUSY_OTHER_CORES = 0.25  # CPUs used by processes not of the scenario, above which its latencies are flagged
MOLT_RELOADS = "reloads"


def build_kind(path):
    path = str(path or "")
    return "release" if "release" in path else "debug" if "debug" in path else "?"


def rss_mib(entries):
    """The VmRSS of molt, summed over the scenario's molt processes, in MiB."""
    values = [entry.get("vmrss_kib") for entry in (entries or {}).values()]
    values = [value for value in values if value]
    return round(sum(values) / 1024, 1) if values else None


def plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def condensed(report):
    latency = report["latency_ms"]
    return {
        "category": report["category"], "description": report["description"], "quick": report["quick"],
        "rate": report["rate"], "clients": report["clients"], "mix": report.get("mix"), "timeout_ms": report.get("timeout_ms"),
        "targets": len(report.get("targets") or []),
        "start_unix_ms": report["start_unix_ms"], "duration_s": report["duration_s"],
        "build": build_kind(report.get("molt")), "molt": report.get("molt"), "command": report.get("command"),
        "calls": report["calls"], "failed": report["failed"], "failed_unexpected": report["failed_unexpected"],
        "failed_expected": report["failed_expected"], "failed_expected_by_reason": report["failed_expected_by_reason"],
        "lost": report["lost"], "writes_acked": report.get("writes_acked"), "held_locks": report.get("held_locks"),
        "steady": latency["steady"], "during": latency["during"], "p99_ratio": report["p99_ratio"],
        "apply_ms_by_action": report["apply_ms_by_action"], "event_ms_by_category": report["event_ms_by_category"],
        "apply_steps_ms_by_action": report.get("apply_steps_ms_by_action", {}),
        "events": report["events"], "longest_gap_ms": report["longest_gap_ms"],
        "longest_gap_state_ms": report.get("longest_gap_state_ms"), "longest_gap_lock_ms": report.get("longest_gap_lock_ms"),
        "molt_processes": len(report["rss_kib"].get("before") or {}) or 1,
        "load_average": report.get("load_average"), "cpu": report.get("cpu"),
        "rss_mib_before": rss_mib(report["rss_kib"].get("before")), "rss_mib_after": rss_mib(report["rss_kib"].get("after")),
        "pass": report["pass"], "misses": report["misses"], "notes": report.get("notes", []),
        "machine": report.get("machine"),
    }


def baseline_ratios(scenarios):
    """Failed calls and longest gap of each baseline against molt's reloads scenario."""
    molt = scenarios.get(MOLT_RELOADS)
    if not molt or "error" in molt:
        return {}
    ratios = {}
    for name in BASELINES:
        base = scenarios.get(name)
        if not base or "error" in base:
            continue
        # Both change the state store: the gap that matters is the state calls' one.
        entry = {"baseline_failed": base["failed"], "baseline_events": base["events"],
                 "molt_failed": molt["failed"], "molt_events": molt["events"],
                 "baseline_longest_gap_ms": base["longest_gap_state_ms"], "molt_longest_gap_ms": molt["longest_gap_state_ms"]}
        entry["failed_ratio"] = (round(base["failed"] / molt["failed"], 1) if molt["failed"] else None)
        entry["gap_ratio"] = (round(entry["baseline_longest_gap_ms"] / entry["molt_longest_gap_ms"], 1)
                              if entry["baseline_longest_gap_ms"] and entry["molt_longest_gap_ms"] else None)
        ratios[name] = entry
    return ratios


def write_summary(out_root, machine, command, specs):
    """summary.json over every scenario that has a report.json (or an error.json) under `out_root`."""
    scenarios = {}
    for name in specs:
        directory = out_root / name
        if (directory / "report.json").exists():
            scenarios[name] = condensed(json.loads((directory / "report.json").read_text()))
        elif (directory / "error.json").exists():
            scenarios[name] = {"error": json.loads((directory / "error.json").read_text())["error"],
                               "category": specs[name].category, "description": specs[name].description}
    summary = {"generated_unix_ms": int(time.time() * 1000), "machine": machine, "command": command,
               "scenarios": scenarios, "baselines_vs_reloads": baseline_ratios(scenarios)}
    out_root.mkdir(parents=True, exist_ok=True)
    (out_root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def fmt(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.{digits}f}"
    return str(value)


def triple(stats):
    return "–" if not stats else f"{fmt(stats['p50'])} / {fmt(stats['p99'])} / {fmt(stats['max'])}"


def durations(row):
    parts = []
    for action, stats in sorted((row.get("apply_ms_by_action") or {}).items()):
        if stats:
            parts.append(f"{action} {fmt(stats['p50'])} / {fmt(stats['max'])} ({stats['count']})")
            # The stateful pause (calls held while state is handed over) where there was one.
            pause = ((row.get("apply_steps_ms_by_action") or {}).get(action) or {}).get("pause")
            if pause and pause.get("max"):
                parts.append(f"of which pause {fmt(pause['p50'])} / {fmt(pause['max'])}")
    if not parts:
        for category, stats in sorted((row.get("event_ms_by_category") or {}).items()):
            if stats:
                parts.append(f"{category}: {fmt(float(stats['p50']))} / {fmt(float(stats['max']))} ({stats['count']})")
    return "<br>".join(parts) or "–"


def gaps(row):
    # The lock calls' own gap is in report.json but not here: lock operations are a fifth of a random mix, so gaps
    # of ~70 ms between two of them happen by chance in every run.
    return " / ".join(fmt(row.get(key)) for key in ("longest_gap_ms", "longest_gap_state_ms"))


def verdict(row):
    if row["pass"] is None:
        return "baseline"
    if row["pass"]:
        return "✅ met"
    return "❌ **missed**: " + "; ".join(row["misses"])


def failed_cell(row):
    text = f"{row['failed']}"
    if row["failed"]:
        expected = row["failed_expected"]
        text += f" ({row['failed_unexpected']} unexpected"
        if expected:
            text += f", {expected} expected: " + ", ".join(row["failed_expected_by_reason"])
        text += ")"
    return text


def utc(unix_ms):
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(unix_ms / 1000))


def section(summary, docs_dir, benchmarks_path):
    scenarios = summary["scenarios"]
    ran = {name: row for name, row in scenarios.items() if "error" not in row}
    lines = [BEGIN, "",
             "Generated by `Benchmarks/scenarios/scenarios.py report` (also run at the end of `scenarios.py run all`) "
             "from `build/bench/scenarios/*/report.json`; do not edit by hand between the markers.", ""]
    if not ran:
        lines += ["No scenario report yet: run `build/bench-venv/bin/python Benchmarks/scenarios/scenarios.py run all`.", ""]
        lines += [f"- {name}: ⚠️ could not run: {row['error'][:200]}" for name, row in scenarios.items()]
        lines += [""] if scenarios else []
    else:
        starts = [row["start_unix_ms"] for row in ran.values()]
        machines = [row["machine"] for row in ran.values() if row.get("machine")]
        machine = machines[0] if machines else summary.get("machine") or {}
        builds = sorted({row["build"] for row in ran.values()})
        rates = sorted({row["rate"] for row in ran.values() if row["rate"] is not None})
        commands = sorted({row["command"] for row in ran.values() if row.get("command")})
        quick = [name for name, row in ran.items() if row["quick"]]
        others = [row["cpu"]["other_cores"] for row in ran.values() if row.get("cpu")]
        loads = [value for row in ran.values() for value in
                 ((row.get("load_average") or {}).get("at_start", [None])[0],
                  (row.get("load_average") or {}).get("at_end", [None])[0]) if value is not None]
        lines += [
            f"Runs of {utc(min(starts))}" + (f" to {utc(max(starts))}" if max(starts) - min(starts) > 60000 else "")
            + f" on {machine.get('cpu', '?')}, {machine.get('cpus', '?')} vCPUs, {machine.get('memory_gib', '?')} GiB, "
            f"Linux {machine.get('kernel', '?')}; source {machine.get('source', '?')}; molt {', '.join(builds)} build; "
            f"load: `molt-bench loadgen`, open loop at {', '.join(str(r) for r in rates)} operations/s, mix "
            f"{', '.join(sorted({str(row.get('mix')) for row in ran.values()}))} (a lock operation is two calls, TryLock "
            f"then Unlock), {', '.join(sorted({str(row.get('clients')) for row in ran.values()}))} HTTP/2 connections, "
            f"per-call deadline {', '.join(sorted({str(row.get('timeout_ms') or 2000) for row in ran.values()}))} ms. "
            f"Command{'s' if len(commands) > 1 else ''}: " + "; ".join(f"`{c}`" for c in commands) + "."
            + (f" 1-minute load average at the scenarios' starts and ends: {min(loads):.1f}–{max(loads):.1f} (the "
               f"scenario's own processes included: at 500 operations/s molt uses about half a core and the load "
               f"generator about as much)." if loads else "")
            + (f" CPUs used by other work (other processes, the kernel, the hypervisor) while the load ran: {min(others):.2f}–"
               f"{max(others):.2f} (a scenario where they used {BUSY_OTHER_CORES} or more is marked ⚠️: its latencies "
               f"are not reliable)." if others else ""),
            ""]
        if quick:
            lines += [f"**Quick (smoke) runs, numbers not meaningful:** {', '.join(quick)}.", ""]
        lines += ["| scenario | calls | failed | lost | steady p50 / p99 / max (ms) | during events p50 / p99 / max (ms) "
                  "| apply p50 / max (ms, count) | longest gap: all / state calls (ms) | molt RSS (MiB) before → after "
                  "| targets |",
                  "| --- | ---: | --- | ---: | --- | --- | --- | ---: | --- | --- |"]
        for name, row in scenarios.items():
            if "error" in row:
                lines.append(f"| {name} | – | – | – | – | – | – | – | – | ⚠️ could not run: {row['error'][:200]} |")
                continue
            link = f"[{name}]({(docs_dir / (name + '.png')).relative_to(benchmarks_path.parent)})"
            label = link + (" (quick)" if row["quick"] else "") + (" *baseline*" if row["category"] == "baseline" else "")
            other = (row.get("cpu") or {}).get("other_cores")
            if other is not None and other >= BUSY_OTHER_CORES:
                label += f" ⚠️ busy machine: other work used {other} CPUs"
            rss = f"{fmt(row['rss_mib_before'])} → {fmt(row['rss_mib_after'])}"
            if row.get("molt_processes", 1) > 1:
                rss += f" ({row['molt_processes']} processes)"
            during = triple(row["during"]) + (f" ({row['p99_ratio']}× p99)" if row.get("p99_ratio") else "")
            lines.append(f"| {label} | {row['calls']} | {failed_cell(row)} | {row['lost']} | {triple(row['steady'])} | "
                         f"{during} | {durations(row)} | {gaps(row)} | {rss} | {verdict(row)} |")
        lines.append("")
        ratios = summary.get("baselines_vs_reloads") or {}
        if ratios:
            lines.append("Baselines against molt's `reloads` scenario (the same change, a new state store instance, made "
                         "without and with molt's reload):")
            lines.append("")
            for name, entry in ratios.items():
                failed = (f"{plural(entry['baseline_failed'], 'failed call')} over {plural(entry['baseline_events'], 'change')}"
                          f" ({entry['baseline_failed'] / max(entry['baseline_events'], 1):.1f} per change) vs "
                          f"{entry['molt_failed']} over {plural(entry['molt_events'], 'reload')}")
                if entry["failed_ratio"]:
                    failed += f" ({entry['failed_ratio']}×)"
                gap = (f"longest gap without a successful state call {fmt(entry['baseline_longest_gap_ms'])} ms vs "
                       f"{fmt(entry['molt_longest_gap_ms'])} ms")
                if entry["gap_ratio"]:
                    gap += f" ({entry['gap_ratio']}×)"
                lines.append(f"- **{name}**: {failed}; {gap}.")
            lines.append("")
        notes = [(name, note) for name, row in ran.items() for note in row.get("notes", [])]
        if notes:
            lines += ["Notes: " + "; ".join(f"{name}: {note}" for name, note in notes) + ".", ""]
        lines += [
            "What the columns mean: *calls* and *failed* are the load generator's counts (a lock op is two calls, "
            "TryLock and Unlock); failed calls are *expected* only inside a window where the scenario makes them "
            "unavoidable (Redis dead: state calls; molt killed or restarting; a baseline's remove/restart) — every "
            "other failed call is *unexpected* and misses the target. *lost* = acknowledged writes missing or changed "
            "in Redis after the run (read back from every Redis involved) + held locks lost. Latencies are of "
            "successful calls, measured from the call's due time (open loop, no coordinated omission); *steady* is "
            "the window before the first event (after a warm-up), *during events* each event from its start to its "
            "end + 250 ms. *apply* is molt's own ApplyResult.total_ms per action (for baselines and faults without an "
            "apply: the event's wall-clock duration); *pause*, where a stateful component had one, is the part of "
            "it in which calls to that component waited while its state was handed over (ApplyResult.pause_ms). "
            "Where the p99 target is missed, the row says whether the slowest 1% of the calls in the event "
            "windows were in flight while an action ran or came after the actions had ended. *longest gap*: the longest time between two successive "
            "completions of successful calls (all calls; state calls only). Targets (molt's scenarios and faults): 0 unexpected failed calls, 0 "
            "lost, every event with its expected outcome, p99 during events ≤ 2 × steady p99 (not for the scenarios "
            "whose notes say so). Per-scenario details: `build/bench/scenarios/<name>/report.json`, events.json, "
            "timeline.csv.", ""]
        lines.append("Plots (calls/s and failed/s on top, p50/p99/max latency below, events shaded): "
                     + " · ".join(f"[{name}]({(docs_dir / (name + '.png')).relative_to(benchmarks_path.parent)})"
                                  for name in ran) + ".")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def update_benchmarks(summary, out_root, benchmarks_path, docs_dir):
    """Copies the plots to `docs_dir` and rewrites the marked section of `benchmarks_path`."""
    benchmarks_path = benchmarks_path.resolve()
    docs_dir = docs_dir.resolve()
    docs_dir.mkdir(parents=True, exist_ok=True)
    for name, row in summary["scenarios"].items():
        plot = out_root / name / "plot.png"
        if "error" not in row and plot.exists():
            shutil.copy2(plot, docs_dir / f"{name}.png")
    text = benchmarks_path.read_text() if benchmarks_path.exists() else "# Benchmarks\n"
    new_section = section(summary, docs_dir, benchmarks_path)
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + new_section + after
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{new_section}\n"
    benchmarks_path.write_text(text)
