"""The benchmark's Markdown table and chart."""

from __future__ import annotations

from pathlib import Path

from .config import POLL_INTERVAL
from .model import Run

__all__ = ["chart", "push_table", "table"]

#: The design each design is compared with in the table, and the word for it: batched against
#: the naive one, push against batched.
REFERENCE = {"batched": ("direct", "naive"), "push": ("batched", "batched")}


def fmt(value: float | None, digits: int = 0) -> str:
    """``value`` with ``digits`` decimals, ``-`` for None."""
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(ours: float | None, ref: float | None, word: str = "naive") -> str:
    """`` (WORD xR)``: how many times ours the reference design's value is; "" when unknown."""
    if ours is None or ref is None or ours == 0:
        return ""
    return f" ({word} x{ref / ours:.1f})"


def apiserver_cell(run: Run, field: str) -> str:
    """The operator's apiserver rate ``field`` (a second) while creating / in the steady window."""
    phases = [run.apiserver.get(p, {}).get(field) for p in ("create", "steady")]
    return " / ".join(fmt(v, 1) for v in phases)


def table(runs: list[Run]) -> str:
    """The Markdown table of ``runs`` (ratios against the reference design at the same N:
    :data:`REFERENCE`)."""
    by = {(r.design, r.n, r.limits): r for r in runs}
    lines = ["| N | limits | design | Ready after create (s) | settled after (s) | reads/min | quiet reads/min | "
             "writes/min | 429s (window / whole run) | "
             "creates/min | staleness p50 / p99 (s) | peak RSS (MB) | CPU (s) | "
             "apiserver requests/s create / steady | Secret GETs/s create / steady |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r.limits != "lifted", r.n, r.design)):
        ref_design, word = REFERENCE.get(r.design, ("", ""))
        ref = by.get((ref_design, r.n, r.limits))

        def vs(ours: float | None, field: str, ref: Run | None = ref, word: str = word) -> str:
            return ratio(ours, getattr(ref, field), word) if ref else ""

        ready_cell = fmt(r.ready_seconds, 1) if r.ready_seconds is not None else f"{r.ready_count}/{r.n} in time"
        if r.limits != "lifted":
            ready_cell = "-"
        stale = f"{fmt(r.staleness_p50, 1)} / {fmt(r.staleness_p99, 1)}"
        if r.staleness_missed:
            stale += f" ({r.staleness_missed} missed)"
        lines.append(
            f"| {r.n} | {r.limits} | {r.design} | {ready_cell}{vs(r.ready_seconds, 'ready_seconds')} | "
            f"{fmt(r.settle_seconds)} | {fmt(r.reads_per_minute, 1)}{vs(r.reads_per_minute, 'reads_per_minute')} | "
            f"{fmt(r.quiet_reads_per_minute, 1)}{vs(r.quiet_reads_per_minute, 'quiet_reads_per_minute')} | "
            f"{fmt(r.writes_per_minute, 1)} | {r.rate_limited} / {r.rate_limited_total} | "
            f"{fmt(r.creates_per_minute, 1)} | {stale}{vs(r.staleness_p99, 'staleness_p99')} | "
            f"{r.peak_rss_mb:.0f}{vs(r.peak_rss_mb, 'peak_rss_mb')} | "
            f"{r.cpu_seconds:.0f}{vs(r.cpu_seconds, 'cpu_seconds')} | "
            f"{apiserver_cell(r, 'requests_per_second')} | {apiserver_cell(r, 'secret_gets_per_second')} |")
    return "\n".join(lines)


def push_table(runs: list[Run]) -> str:
    """The Markdown table of the push runs' second part: the simulator stops delivering webhooks
    mid-run while environments keep changing."""
    lines = ["| N | push mode after settling (s) | deliveries in the steady window | push mode (quiet start / end) | "
             "staleness p50 / p99 after "
             "the stop (s) | missed | poll mode after the stop / after its first change (s) | staleness p99 "
             "after poll mode (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in runs if r.design == "push" and r.limits == "lifted"), key=lambda r: r.n):
        modes = " / ".join(fmt(m) for m in r.push_mode_quiet) or "-"
        waited = f"{fmt(r.push_wait_seconds)}" if r.push_mode_steady == 1 else f"not in {fmt(r.push_wait_seconds)}"
        lines.append(f"| {r.n} | {waited} | {fmt(r.deliveries)} | {modes} | "
                     f"{fmt(r.stopped_p50, 1)} / {fmt(r.stopped_p99, 1)} | "
                     f"{r.stopped_missed} | {fmt(r.poll_mode_after)} / {fmt(r.poll_mode_after_change)} | "
                     f"{fmt(r.stopped_after_switch_p99, 1)} |")
    return "\n".join(lines)


def chart(runs: list[Run], path: Path) -> None:
    """Write the chart (API calls a minute and staleness against N, every design) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (calls, stale) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = {"batched": "oec-operator (batched)", "direct": "naive (one poll per resource)",
              "push": "oec-operator with webhooks (push)"}
    for design, style in (("batched", "o-"), ("direct", "s--"), ("push", "^-.")):
        rs = sorted((r for r in runs if r.design == design and r.limits == "lifted"), key=lambda r: r.n)
        if not rs:
            continue
        label = labels[design]
        calls.plot([r.n for r in rs], [max(0.1, r.reads_per_minute + r.writes_per_minute) for r in rs], style,
                   label=label)
        timed = [r for r in rs if r.staleness_p99 is not None]
        if timed:
            stale.plot([r.n for r in timed], [r.staleness_p99 for r in timed], style, label=f"{label} p99")
            stale.plot([r.n for r in timed], [r.staleness_p50 for r in timed], style, alpha=0.4, label=f"{label} p50")
    calls.axhline(120, color="grey", linestyle=":", label="read budget (120/min)")
    scale = "log" if len({r.n for r in runs}) > 1 else "linear"
    calls.set(xscale=scale, yscale="log", xlabel="resources (10 projects)", ylabel="API calls a minute (steady)",
              title="API calls a minute")
    stale.axhline(2 * POLL_INTERVAL, color="grey", linestyle=":", label="goal: 2 x poll interval")
    stale.set(xscale=scale, xlabel="resources (10 projects)", ylabel="seconds", title="Status staleness")
    for ax in (calls, stale):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
