"""The HTML page of the model run: ``model_sim.html``, self-contained (inline CSS, plots as base64 PNG).

Three matplotlib plots (Agg backend): cycles per operator (simulated and analytical, log scale),
engine utilization per layer, mismatches per operator (the diverged ones in red); then the
summary, the operator table, the golden-only operators and the environment of
:func:`cosim.model_report.build_document`.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from .model_report import error_text, first_text, markdown, summary_line, utilization_text

__all__ = ["plots", "html_page"]


def _figure_png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plots(document: dict[str, Any]) -> dict[str, str]:
    """Base64 PNG plots: cycles (simulated vs analytical), utilization, mismatches per operator."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = document["operators"]
    names = [row["op"] for row in rows]
    positions = list(range(len(rows)))
    width = max(8.0, 0.22 * len(rows))
    images = {}

    figure, axes = pyplot.subplots(figsize=(width, 4))
    axes.bar([p - 0.2 for p in positions], [max(row["cycles"], 1) for row in rows], 0.4, label="simulated")
    axes.bar(
        [p + 0.2 for p in positions],
        [max(row["analytical_cycles"], 1) for row in rows],
        0.4,
        label="analytical",
    )
    axes.set_yscale("log")
    axes.set_ylabel("cycles")
    axes.set_title("Cycles per operator: simulated vs analytical")
    axes.set_xticks(positions, names, rotation=90, fontsize=6)
    axes.legend()
    images["cycles"] = _figure_png(figure)
    pyplot.close(figure)

    engines = [(row["op"], row["utilization"]) for row in rows if row["utilization"] is not None]
    # A circuit that failed to build or run has no cycles, hence no utilization: its error is in the table.
    engines += [
        (f"{row['op']} ({name})", value)
        for row in rows
        for name, value in row["engines"].items()
        if value is not None
    ]
    figure, axes = pyplot.subplots(figsize=(max(8.0, 0.25 * len(engines)), 4))
    axes.bar(range(len(engines)), [100 * value for _, value in engines], color="tab:green")
    axes.set_ylim(0, 100)
    axes.set_ylabel("useful MACs / (cells x cycles), %")
    axes.set_title("Engine utilization per layer")
    axes.set_xticks(range(len(engines)), [name for name, _ in engines], rotation=90, fontsize=6)
    images["utilization"] = _figure_png(figure)
    pyplot.close(figure)

    figure, axes = pyplot.subplots(figsize=(width, 3))
    colors = ["tab:red" if row["diverged"] else "tab:gray" for row in rows]
    axes.bar(positions, [row["mismatches"] for row in rows], color=colors)
    axes.set_ylabel("mismatching transfers")
    axes.set_title("Mismatches per operator (red: diverged)")
    axes.set_xticks(positions, names, rotation=90, fontsize=6)
    images["mismatches"] = _figure_png(figure)
    pyplot.close(figure)
    return images


def _table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in body
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def html_page(document: dict[str, Any]) -> str:
    """The self-contained HTML report (inline CSS, plots as data: URIs, no external resource)."""
    s = document["summary"]
    images = plots(document)
    operators = _table(
        [
            "layer",
            "operator",
            "circuit",
            "jobs",
            "values (transfers)",
            "mismatches",
            "first mismatch",
            "max abs err",
            "cycles",
            "analytical",
            "utilization",
            "status",
        ],
        [
            [
                row["layer"],
                row["op"],
                ", ".join(row["units"]),
                str(row["jobs"]),
                f"{row['values']:,} ({row['vectors']:,})",
                f"{row['mismatches']:,}",
                first_text(row),
                error_text(row),
                f"{row['cycles']:,}",
                f"{row['analytical_cycles']:,}",
                utilization_text(row),
                row["status"],
            ]
            for row in document["operators"]
        ],
    )
    golden = _table(
        ["operator", "kind", "reason"], [[g["op"], g["kind"], g["reason"]] for g in document["golden_only"]]
    )
    environment_rows = _table(["tool", "version"], [[k, str(v)] for k, v in document["environment"].items()])
    figures = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{data}"></figure>'
        for name, data in images.items()
    )
    verdict_class = "pass" if s["verdict"] == "pass" else "fail"
    diverging = ""
    if s["first_diverging"]:
        first = html.escape(s["first_diverging"]["op"])
        diverging = f"<p class='fail'>First diverging operator: <code>{first}</code></p>"
    markdown_intro = markdown(document).split("\n| layer |")[0]
    intro = "".join(
        f"<p>{html.escape(line.lstrip('- '))}</p>" for line in markdown_intro.splitlines()[2:] if line.strip()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Quiver model run</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
.pass {{ color: #176c2f; }} .fail {{ color: #b00020; font-weight: bold; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Model run: every integer operator through the RTL</h1>
<p class="{verdict_class}">{html.escape(summary_line(document))}</p>
{diverging}
{intro}
<h2>Plots</h2>{figures}
<h2>Operators</h2>{operators}
<h2>Golden-only operators</h2>{golden}
<h2>Environment</h2>{environment_rows}
</body></html>
"""
