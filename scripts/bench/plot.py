"""plot.png: one panel per measure (matplotlib, headless)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from .common import BATCH_DELAY, BATCH_JOBS, BATCH_TASKS, E2E_SIZES, SIZES, TARGETS
from .report import _why


def plot(path: Path, results: dict[str, Any]) -> None:
    """plot.png: throughput, RSS growth, end to end, batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(12, 12.5))
    fig.suptitle(f"Triverse for Blender benchmarks ({results['machine']['date'][:10]})", fontsize=13)

    def bars(ax: Any, groups: list[str], series: list[tuple[str, list[list[float]], str]], unit: str) -> None:
        width = 0.8 / max(1, len(series))
        for k, (name, per_group, color) in enumerate(series):
            meds = [statistics.median(v) if v else 0 for v in per_group]
            lo = [m - min(v) if v else 0 for m, v in zip(meds, per_group, strict=True)]
            hi = [max(v) - m if v else 0 for m, v in zip(meds, per_group, strict=True)]
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=name, color=color)
            for x, m, v in zip(xs, meds, per_group, strict=True):
                y = max(v) if v else m  # above the min-max whisker, so the two never overlap
                ax.annotate(
                    f"{m:.3g}", (x, y), ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points"
                )
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(unit)
        top = max((max(v) for _, per_group, _ in series for v in per_group if v), default=1.0)
        ax.set_ylim(0, top * 1.25)  # room for the labels and the legend
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(axis="y", alpha=0.3)

    def empty(ax: Any, title: str, why: str) -> None:
        ax.set_title(title)
        ax.text(0.5, 0.5, f"not measured\n({why})", ha="center", va="center", transform=ax.transAxes, wrap=True)
        ax.set_xticks([])
        ax.set_yticks([])

    tp = results.get("throughput") or {}
    ax = axes[0][0]
    if "not_measured" in tp or not tp:
        empty(ax, "Download throughput", _why(tp))
    else:
        labels = [s for s in SIZES if s in tp]
        ratio_text = ", ".join(f"{s}: {statistics.median(tp[s]['ratio_client_over_curl']):.2f}" for s in labels)
        bars(
            ax,
            labels,
            [
                ("add-on client", [tp[s]["client_MBps"] for s in labels], "tab:blue"),
                ("curl", [tp[s]["curl_MBps"] for s in labels], "tab:gray"),
            ],
            "MB/s (higher is better)",
        )
        ax.set_title(f"Download throughput (client/curl {ratio_text})", fontsize=10)

    rss = results.get("rss") or {}
    ax = axes[0][1]
    if "not_measured" in rss or not rss:
        empty(ax, "Peak RSS growth during a download", _why(rss))
    else:
        labels = [s for s in SIZES if s in rss]
        bars(ax, labels, [("peak RSS growth", [rss[s]["growth_MB"] for s in labels], "tab:green")], "MB")
        ax.axhline(TARGETS["rss_mb"], color="tab:red", ls="--", lw=1, label=f"target < {TARGETS['rss_mb']:.0f} MB")
        ax.legend(fontsize=8, loc="upper right")
        ax.set_ylim(0, TARGETS["rss_mb"] * 1.25)
        ax.set_title("Peak RSS growth during a download, by asset size", fontsize=10)
        ax.set_xlabel("asset size")

    e2e = results.get("e2e") or {}
    ax = axes[1][0]
    if "not_measured" in e2e or not e2e:
        empty(ax, "End to end", _why(e2e))
    else:
        labels = [s for s in E2E_SIZES if s in e2e]
        bars(
            ax,
            labels,
            [
                ("import_task", [[x * 1000 for x in e2e[s]["addon_s"]] for s in labels], "tab:blue"),
                ("curl + glTF import", [[x * 1000 for x in e2e[s]["native_s"]] for s in labels], "tab:gray"),
            ],
            "ms (lower is better)",
        )
        ratio_text = ", ".join(f"{s}: {statistics.median(e2e[s]['ratio']):.2f}" for s in labels)
        ax.set_title(f"End to end in bpy {results['machine']['bpy']} (ratio {ratio_text})", fontsize=10)

    batch = results.get("batch") or {}
    ax = axes[1][1]
    if "not_measured" in batch or not batch:
        empty(ax, f"Batch of {BATCH_TASKS}", _why(batch))
    else:
        labels = [f"--jobs {j}" for j in BATCH_JOBS]
        bars(
            ax,
            labels,
            [
                ("report seconds", [batch["jobs"][str(j)]["report_s"] for j in BATCH_JOBS], "tab:orange"),
                ("wall (with Blender start)", [batch["jobs"][str(j)]["wall_s"] for j in BATCH_JOBS], "tab:gray"),
            ],
            "s (lower is better)",
        )
        speed = ", ".join(f"x{statistics.median(batch[f'speedup_{j}_over_1']):.2f}" for j in BATCH_JOBS[1:])
        ax.set_title(
            f"Batch of {BATCH_TASKS} tasks, {BATCH_DELAY * 1000:.0f} ms to first byte (speed-up 4, 8: {speed})",
            fontsize=10,
        )
    defaults = results.get("e2e_defaults") or {}
    for col, kind in enumerate(("mesh", "padded")):
        ax = axes[2][col]
        names = [f"{label} {kind}" for label in SIZES if f"{label} {kind}" in defaults]
        title = f"End to end with defaults (library on), {kind} GLBs"
        if "not_measured" in defaults or not names:
            empty(ax, title, _why(defaults))
            continue
        bars(
            ax,
            [n.rsplit(" ", 1)[0] for n in names],
            [
                ("import_task", [[x * 1000 for x in defaults[n]["addon_s"]] for n in names], "tab:blue"),
                ("curl + glTF import", [[x * 1000 for x in defaults[n]["native_s"]] for n in names], "tab:gray"),
            ],
            "ms, log scale (lower is better)",
        )
        ax.set_yscale("log")
        every = [x * 1000 for n in names for x in defaults[n]["native_s"] + defaults[n]["addon_s"]]
        ax.set_ylim(min(every) / 2, max(every) * 4)  # log scale: 1 MB and 170 MB on one axis
        ratio_text = ", ".join(f"{n.rsplit(' ', 1)[0]}: {defaults[n]['ratio_fastest']:.2f}" for n in names)
        ax.set_title(f"{title}\n(fastest/fastest {ratio_text})", fontsize=10)

    stall = results.get("stall") or {}
    if stall.get("max_gap_ms"):
        note = f"UI stall during a sidebar download: max gap {statistics.median(stall['max_gap_ms']):.0f} ms"
    else:
        note = f"UI stall: not measured ({_why(stall)})"
    watch = results.get("watch") or {}
    if watch.get("latency_s"):
        lat = watch["latency_s"]
        note += (f"; SUCCESS to model in scene: watched {statistics.median(lat['watched']):.3f} s, "
                 f"polled {statistics.median(lat['polled']):.2f} s (medians)")  # fmt: skip
    fig.text(0.5, 0.01, note, ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
