"""From the load generator's files (summary.json, calls.csv) and the driver's events to a scenario's
report.json, timeline.csv and plot.png.

Times: calls.csv gives each call's due time in µs since the load generator's start (start_unix_ms); events
are recorded in Unix ms and converted to ms since that start. A call belongs to a window when its due time
is in it (the load is open loop, so a stall shows as latency of the calls due during it).

Definitions (also in the BENCHMARKS.md section):
- steady window: from the end of the warm-up to the start of the first event (the whole run after the
  warm-up when there is no event);
- during events: the union of [event start, event end + EVENT_MARGIN_MS] over the events;
- p50/p99/max: nearest-rank percentiles of the latencies of the successful calls due in the window;
- longest gap: the longest time between two consecutive completions (due time + latency) of successful
  calls (of all operations; also of the state operations alone and of the lock operations alone);
- expected failures: failed calls that overlap (from due time to completion) a window where the scenario
  makes them unavoidable (Redis dead, molt killed, a baseline's remove/restart), restricted to the
  operations that window names; every other failed call is unexpected and misses the target. Such a window
  runs from the fault to the recovery the app saw: the end of the chain of failed calls (each less than
  RECOVERY_QUIET_MS after the previous one) that follows the moment the cause ended.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np

EVENT_MARGIN_MS = 250  # calls due this long after an event ended still count as "during"
TIMELINE_BIN_MS = 100
OPS = ("save", "get", "trylock", "unlock", "deliver")  # deliver: a pub/sub message (pubsub_load.py)
LOCK_OPS = ("trylock", "unlock")
STATE_OPS = ("save", "get")


class Calls:
    """calls.csv as numpy arrays: t_ms (due, since start), latency_ms, ok (bool), op (str), error (str)."""

    def __init__(self, path):
        t, latency, ok, op, error, target = [], [], [], [], [], []
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                t.append(int(row["t_us"]))
                latency.append(int(row["latency_us"]))
                ok.append(row["ok"] == "1")
                op.append(row["op"])
                error.append(row.get("error") or "")
                target.append(row.get("target") or "")
        order = np.argsort(np.asarray(t, dtype=np.int64), kind="stable")
        self.t_ms = np.asarray(t, dtype=np.float64)[order] / 1000.0
        self.latency_ms = np.asarray(latency, dtype=np.float64)[order] / 1000.0
        self.ok = np.asarray(ok, dtype=bool)[order]
        self.op = np.asarray(op, dtype=object)[order]
        self.error = np.asarray(error, dtype=object)[order]
        self.target = np.asarray(target, dtype=object)[order]

    def __len__(self):
        return len(self.t_ms)

    @property
    def end_ms(self):
        return float(self.t_ms.max()) if len(self) else 0.0


def nearest_rank(values, fraction):
    ordered = np.sort(values)
    return float(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)])


def latency_stats(latencies):
    if len(latencies) == 0:
        return None
    return {"calls": int(len(latencies)), "p50": round(nearest_rank(latencies, 0.50), 3),
            "p99": round(nearest_rank(latencies, 0.99), 3), "max": round(float(np.max(latencies)), 3)}


def duration_stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"count": len(values), "p50": round(nearest_rank(np.asarray(values), 0.50), 2),
            "max": round(max(values), 2)}


def in_windows(t_ms, windows):
    mask = np.zeros(len(t_ms), dtype=bool)
    for start, end in windows:
        mask |= (t_ms >= start) & (t_ms <= end)
    return mask


def slowest_during(calls, during_mask, action_windows, fraction=0.01):
    """Where the slowest `fraction` of the successful calls in the event windows fell: a call overlaps an action
    if it was in flight (due time to completion) while an event's action ran (its start to its end, without the
    margin after it). Slow calls that all came after the actions had ended were not held up by them."""
    indices = np.flatnonzero(during_mask)
    if len(indices) == 0:
        return None
    count = max(1, int(np.ceil(len(indices) * fraction)))
    slowest = indices[np.argsort(-calls.latency_ms[indices], kind="stable")[:count]]
    begin, finish = calls.t_ms[slowest], calls.t_ms[slowest] + calls.latency_ms[slowest]
    overlapping = np.zeros(count, dtype=bool)
    for start, end in action_windows:
        overlapping |= (begin <= end) & (finish >= start)
    return {"calls": int(count), "from_ms": round(float(calls.latency_ms[slowest].min()), 2),
            "overlapping_an_action": int(overlapping.sum()), "after_the_actions": int(count - overlapping.sum())}


def merge_windows(windows):
    merged = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [tuple(w) for w in merged]


def longest_gap(calls, ops=OPS):
    """The longest time (ms) between consecutive completions of successful calls of `ops`, and where it began."""
    mask = calls.ok & np.isin(calls.op, ops)
    done = np.sort(calls.t_ms[mask] + calls.latency_ms[mask])
    if len(done) < 2:
        return None, None
    gaps = np.diff(done)
    index = int(np.argmax(gaps))
    return round(float(gaps[index]), 1), round(float(done[index]), 1)


RECOVERY_QUIET_MS = 1000


def recovery_end(calls, after, ops, quiet_ms=RECOVERY_QUIET_MS):
    """When the app saw the recovery that began at `after` (ms since start) complete: failed calls of `ops`
    due after `after` that follow each other (the first one after `after`) by less than `quiet_ms` are still
    the fault's (e.g. a client connection that reconnects only after its backoff); the recovery ends at the
    completion of the last of them, or at `after` when none failed within `quiet_ms` of it."""
    failed = np.nonzero(~calls.ok & (calls.t_ms >= after) & np.isin(calls.op, ops))[0]
    end, last = after, after
    for index in failed:
        if calls.t_ms[index] - last > quiet_ms:
            break
        last = float(calls.t_ms[index])
        end = max(end, float(calls.t_ms[index] + calls.latency_ms[index]))
    return end


def resolve_expected(calls, expected, start_unix_ms):
    """Each expected-failure window as (from_ms, to_ms, ops, reason) relative to the load's start. A window
    given `until_ok_after_unix_ms` (the moment the cause ended: Redis or molt back) ends at the recovery the app
    saw (`recovery_end`)."""
    resolved = []
    for window in expected:
        ops = tuple(window["ops"]) if window.get("ops") else OPS
        start = window["from_unix_ms"] - start_unix_ms
        if window.get("to_unix_ms") is not None:
            end = window["to_unix_ms"] - start_unix_ms
        else:
            end = recovery_end(calls, window["until_ok_after_unix_ms"] - start_unix_ms, ops)
        resolved.append({"from_ms": round(start, 1), "to_ms": round(end, 1), "ops": list(ops), "reason": window["reason"]})
    return resolved


def classify_failures(calls, windows):
    """A boolean mask of the failed calls that are expected (inside a window, of its ops), and the count per
    reason."""
    failed = ~calls.ok
    expected = np.zeros(len(calls), dtype=bool)
    by_reason = {}
    for window in windows:
        mask = (failed & ~expected & (calls.t_ms <= window["to_ms"])
                & (calls.t_ms + calls.latency_ms >= window["from_ms"]) & np.isin(calls.op, window["ops"]))
        count = int(mask.sum())
        if count:
            by_reason[window["reason"]] = by_reason.get(window["reason"], 0) + count
        expected |= mask
    return expected, by_reason


def error_counts(calls, mask, limit=8):
    counts = {}
    for op, error in zip(calls.op[mask], calls.error[mask]):
        key = f"{op}: {error[:80]}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:limit])


def timeline(calls, bin_ms=TIMELINE_BIN_MS):
    """Rows (t_s, calls_per_s, failed_per_s, p50_ms, p99_ms, max_ms) per bin of due time."""
    if len(calls) == 0:
        return []
    bins = (calls.t_ms // bin_ms).astype(np.int64)
    count = int(bins.max()) + 1
    rows = []
    per_s = 1000.0 / bin_ms
    order = np.argsort(bins, kind="stable")
    sorted_bins = bins[order]
    edges = np.searchsorted(sorted_bins, np.arange(count + 1))
    for index in range(count):
        members = order[edges[index]:edges[index + 1]]
        ok = members[calls.ok[members]]
        failed = len(members) - len(ok)
        lat = calls.latency_ms[ok]
        if len(lat):
            p50, p99, peak = nearest_rank(lat, 0.5), nearest_rank(lat, 0.99), float(lat.max())
        else:
            p50 = p99 = peak = None
        rows.append((round(index * bin_ms / 1000.0, 3), round(len(ok) * per_s, 1), round(failed * per_s, 1),
                     None if p50 is None else round(p50, 3), None if p99 is None else round(p99, 3),
                     None if peak is None else round(peak, 3)))
    return rows


def write_timeline(rows, path):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_s", "ok_calls_per_s", "failed_per_s", "p50_ms", "p99_ms", "max_ms"])
        for row in rows:
            writer.writerow(["" if value is None else value for value in row])


def event_spans(events, start_unix_ms, join_ms=400):
    """Consecutive events of one category closer than `join_ms` grouped into one labelled span (s)."""
    spans = []
    for event in sorted(events, key=lambda e: e["start_unix_ms"]):
        start = (event["start_unix_ms"] - start_unix_ms) / 1000.0
        end = (event["end_unix_ms"] - start_unix_ms) / 1000.0
        if spans and spans[-1]["category"] == event["category"] and start - spans[-1]["end"] <= join_ms / 1000.0:
            spans[-1]["end"] = max(spans[-1]["end"], end)
            spans[-1]["count"] += 1
            spans[-1]["ok"] = spans[-1]["ok"] and event.get("ok") is not False
        else:
            spans.append({"category": event["category"], "label": event.get("label") or event["category"],
                          "start": start, "end": end, "count": 1, "ok": event.get("ok") is not False})
    return spans


def plot(rows, coarse, events, start_unix_ms, path, title, gap=None, expected_windows=()):
    """calls/s and failed/s per 100 ms on top; below, the max per 100 ms and p50/p99 per second (a 100 ms bin
    holds too few calls for a p99 that differs from its max), log scale; events shaded and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = rows[:-1] if len(rows) > 1 else rows  # the last bin is partial (the load stopped inside it)
    t = np.asarray([row[0] for row in rows], dtype=float)
    ok_rate = np.asarray([row[1] for row in rows], dtype=float)
    failed_rate = np.asarray([row[2] for row in rows], dtype=float)

    def series(index):
        return np.asarray([np.nan if row[index] is None else row[index] for row in rows], dtype=float)

    end = (t[-1] + TIMELINE_BIN_MS / 1000.0) if len(t) else 1.0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.6), dpi=90, sharex=True,
                                      gridspec_kw={"height_ratios": [1, 1.3]})
    top.plot(t, ok_rate, color="tab:blue", linewidth=0.8, label="ok calls/s")
    top.plot(t, failed_rate, color="tab:red", linewidth=0.9, label="failed/s")
    top.set_ylabel(f"calls/s ({TIMELINE_BIN_MS} ms bins)")
    top.set_ylim(0, max(float(np.max(ok_rate + failed_rate)) if len(t) else 1.0, 1.0) * 1.35)
    top.set_xlim(0, end)
    top.legend(loc="lower left", fontsize=7, ncol=2)
    top.set_title(title, fontsize=10)
    bottom.plot(t, series(5), linewidth=0.7, color="tab:gray", label=f"max ({TIMELINE_BIN_MS} ms)")
    edges = np.asarray([row[0] for row in coarse] + [end], dtype=float)
    edges[-1] = max(edges[-1], edges[-2] + 0.1)
    for index, label, color in ((4, "p99 (1 s)", "tab:orange"), (3, "p50 (1 s)", "tab:green")):
        values = np.asarray([np.nan if row[index] is None else row[index] for row in coarse], dtype=float)
        bottom.stairs(values, edges, linewidth=1.1, color=color, label=label, baseline=None)
    bottom.set_yscale("log")
    bottom.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    bottom.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    peak = np.nanmax(series(5)) if len(t) and not np.all(np.isnan(series(5))) else None
    if peak:
        bottom.set_ylim(top=peak * 6)
    bottom.set_ylabel("latency of ok calls (ms)")
    bottom.set_xlabel("seconds since the load started")
    bottom.legend(loc="upper left", fontsize=7, ncol=3)
    colors = {}
    palette = ["#8fbcd4", "#f2c57c", "#b5d99c", "#d7a9e3", "#f4a6a6", "#c9c9c9"]
    spans = event_spans(events, start_unix_ms)
    totals, not_ok = {}, {}
    for event in events:
        totals[event["category"]] = totals.get(event["category"], 0) + 1
        not_ok[event["category"]] = not_ok.get(event["category"], 0) + (event.get("ok") is False)
    labelled = set()
    for span in spans:
        color = colors.setdefault(span["category"], palette[len(colors) % len(palette)])
        width = max(span["end"] - span["start"], 0.08)
        for axis in (top, bottom):
            axis.axvspan(span["start"], span["start"] + width, color=color, alpha=0.45, linewidth=0)
        if span["category"] in labelled:
            continue  # one label per category, at its first span, with the count of all its events
        labelled.add(span["category"])
        number = len(labelled) - 1
        count = totals[span["category"]]
        label = span["label"] if count == 1 else f"{count}× {span['label']}"
        if not_ok[span["category"]]:
            label += f" ({not_ok[span['category']]} not as expected!)"
        top.annotate(label, xy=(span["start"], 0.97 - 0.1 * (number % 3)), xycoords=("data", "axes fraction"),
                     fontsize=7, va="top", ha="left", xytext=(2, 0), textcoords="offset points",
                     bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.6, "linewidth": 0})
    for window in expected_windows:
        for axis in (top, bottom):
            axis.axvspan(window["from_ms"] / 1000.0, window["to_ms"] / 1000.0, color="tab:red", alpha=0.08, linewidth=0)
    if gap and gap[0] is not None and gap[0] >= 50:
        bottom.axvspan(gap[1] / 1000.0, (gap[1] + gap[0]) / 1000.0, color="black", alpha=0.15, linewidth=0)
        bottom.annotate(f"longest gap {gap[0]:.0f} ms", xy=(gap[1] / 1000.0, 0.02), xycoords=("data", "axes fraction"),
                        fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    # A palette PNG is a third of the size and looks the same (the plot has few colours).
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)


def analyze(out_dir, meta):
    """Writes report.json, timeline.csv and plot.png in `out_dir` (which holds summary.json, calls.csv and
    events.json) and returns the report. `meta` is what the driver knows: scenario, category, description,
    warmup_ms, events, expected_failures, checks, rss, latency_target, notes, command, ..."""
    out_dir = Path(out_dir)
    summary = json.loads((out_dir / "summary.json").read_text())
    calls = Calls(out_dir / "calls.csv")
    start = summary["start_unix_ms"]
    events = meta["events"]

    warmup_ms = meta.get("warmup_ms", 0)
    event_windows = merge_windows([(e["start_unix_ms"] - start, e["end_unix_ms"] - start + EVENT_MARGIN_MS)
                                   for e in events])
    first_event = min((w[0] for w in event_windows), default=None)
    steady_end = first_event if first_event is not None else calls.end_ms + 1
    steady_mask = calls.ok & (calls.t_ms >= warmup_ms) & (calls.t_ms < steady_end)
    during_mask = calls.ok & in_windows(calls.t_ms, event_windows)
    steady = latency_stats(calls.latency_ms[steady_mask])
    during = latency_stats(calls.latency_ms[during_mask])
    overall = latency_stats(calls.latency_ms[calls.ok])
    slowest = slowest_during(calls, during_mask, [(e["start_unix_ms"] - start, e["end_unix_ms"] - start)
                                                  for e in events])

    windows = resolve_expected(calls, meta.get("expected_failures", []), start)
    expected_mask, expected_by_reason = classify_failures(calls, windows)
    failed_mask = ~calls.ok
    unexpected_mask = failed_mask & ~expected_mask
    gap_ms, gap_at = longest_gap(calls)

    verify = summary.get("verify") or {}
    held = summary.get("held_locks") or {}
    lost = int(verify.get("missing", 0) or 0) + int(verify.get("mismatched", 0) or 0) + int(held.get("lost", 0) or 0)

    by_action, by_category = {}, {}
    for event in events:
        apply = event.get("apply")
        if apply and apply.get("action"):
            by_action.setdefault(apply["action"], []).append(apply.get("total_ms"))
        by_category.setdefault(event["category"], []).append(event["end_unix_ms"] - event["start_unix_ms"])

    # The load generator's own totals, with the rows of calls.csv as a cross-check.
    calls_total = int(summary.get("calls", len(calls)))
    failed_total = int(summary.get("failed", int(failed_mask.sum())))
    overloaded = int(summary.get("overloaded", 0) or 0)
    # Calls the load generator counted as failed without a row (e.g. overloaded) are unexpected failures.
    unexpected = int(unexpected_mask.sum()) + max(0, failed_total - int(failed_mask.sum()))

    category = meta["category"]
    misses = []
    if category != "baseline":
        if unexpected:
            misses.append(f"{unexpected} unexpected failed calls")
        if lost:
            misses.append(f"{lost} lost (writes missing/mismatched or locks lost)")
        if meta.get("latency_target", True) and steady and during:
            if during["p99"] > 2 * steady["p99"]:
                where = (f" (of the {slowest['calls']} slowest calls in the event windows, ≥ {slowest['from_ms']:.2f} ms, "
                         f"{slowest['overlapping_an_action']} were in flight while an action ran and "
                         f"{slowest['after_the_actions']} came after the actions had ended)") if slowest else ""
                misses.append(f"p99 during events {during['p99']:.2f} ms > 2 × steady {steady['p99']:.2f} ms{where}")
    failed_events = [e["name"] for e in events if e.get("ok") is False]
    if failed_events:
        misses.append(f"{len(failed_events)} events did not have the expected outcome (e.g. {failed_events[0]})")
    failed_checks = [c for c in meta.get("checks", []) if not c["ok"]]
    for check in failed_checks:
        misses.append(f"check failed: {check['name']}: {check['detail']}")
    if category == "baseline":
        # Baselines are expected to fail calls; only a broken run (event or check) is a miss.
        passed = None if not (failed_events or failed_checks) else False
    else:
        passed = not misses

    report = {
        "scenario": meta["scenario"], "category": category, "description": meta.get("description", ""),
        "quick": meta.get("quick", False), "rate": summary.get("rate"), "clients": summary.get("clients"),
        "targets": summary.get("targets"), "mix": summary.get("mix"),
        "start_unix_ms": start, "duration_s": summary.get("duration_s"),
        "calls": calls_total, "ok": int(summary.get("ok", int(calls.ok.sum()))), "failed": failed_total,
        "failed_expected": int(expected_mask.sum()), "failed_unexpected": unexpected,
        "failed_expected_by_reason": expected_by_reason,
        "failed_by_op": {op: int((failed_mask & (calls.op == op)).sum()) for op in OPS},
        "unexpected_errors": error_counts(calls, unexpected_mask),
        "expected_errors": error_counts(calls, expected_mask),
        "failed_by_error": summary.get("failed_by_error", {}), "overloaded": overloaded,
        "lost": lost, "writes_acked": summary.get("writes_acked"), "verify": summary.get("verify"),
        "held_locks": summary.get("held_locks"),
        "latency_ms": {"steady": steady, "during": during, "all": overall,
                       "steady_window_ms": [warmup_ms, round(steady_end, 1)],
                       "event_windows_ms": [[round(a, 1), round(b, 1)] for a, b in event_windows]},
        "slowest_during": slowest,
        "p99_ratio": (round(during["p99"] / steady["p99"], 2) if steady and during and steady["p99"] > 0 else None),
        "longest_gap_ms": gap_ms, "longest_gap_at_ms": gap_at,
        "longest_gap_state_ms": longest_gap(calls, STATE_OPS)[0], "longest_gap_lock_ms": longest_gap(calls, LOCK_OPS)[0],
        "apply_ms_by_action": {action: duration_stats(values) for action, values in by_action.items()},
        "apply_steps_ms_by_action": {
            action: {step: duration_stats([e["apply"].get(f"{step}_ms") for e in events
                                           if e.get("apply") and e["apply"].get("action") == action])
                     for step in ("init", "readiness", "pause", "drain", "switch", "total")}
            for action in by_action},
        "event_ms_by_category": {category_name: duration_stats(values) for category_name, values in by_category.items()},
        "events": len(events), "events_not_as_expected": failed_events,
        "expected_failure_windows": windows,
        "rss_kib": meta.get("rss", {}),
        "checks": meta.get("checks", []),
        "latency_target": meta.get("latency_target", True),
        "pass": passed, "misses": misses, "notes": meta.get("notes", []),
        "molt": meta.get("molt"), "loadgen": meta.get("loadgen"), "command": meta.get("command"),
        **meta.get("extra", {}),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = timeline(calls)
    write_timeline(rows, out_dir / "timeline.csv")
    if rows:
        verdict = {True: "targets met", False: "targets MISSED", None: "baseline"}[passed]
        title = (f"{meta['scenario']}: {calls_total} calls, {failed_total} failed "
                 f"({unexpected} unexpected), {lost} lost — {verdict}")
        plot(rows, timeline(calls, 1000), events, start, out_dir / "plot.png", title, (gap_ms, gap_at), windows)
    return report
