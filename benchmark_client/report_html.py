"""The HTML report: one self-contained file (inline CSS, JS and SVG; nothing fetched from a network).

Sections: the run header, the score tables (same rows as the Markdown report), a bar chart of
each (split, dimension) mean with its 95% interval as whiskers (inline SVG drawn here, y axis
0..5 judge points), and every item grouped by dimension: query and response ``<audio>`` with
``preload="none"`` (thousands of items stay cheap), score, verdict, query labels, response tone,
transcripts, and the error, marked, if any. Audio ``src`` is the path relative to the HTML
file's folder, so the report and its audio can be moved together.

Opening the file with ``?check-audio=1`` makes the page load every clip's metadata and write into
``#audio-check`` how many reached ``readyState >= 1`` (``data-ready``), failed (``data-failed``)
and exist (``data-total``); the headless-Chromium test reads that back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmark_client.manifest import SPLITS
from benchmark_client.report import (
    DIMENSIONS,
    as_item,
    doc_table,
    format_stat,
    report_header,
    table_rows,
)
from benchmark_client.results import ItemResult

SPLIT_COLOURS = {"synthetic": "#4c78a8", "real": "#f58518"}
SCORE_MAX = 5.0  # the chart's y axis runs 0..5 judge points

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em}
td.num{text-align:right}tr.average td,tr.overall td{font-weight:600;background:#f4f4f4}
dl.run{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em}dl.run dt{font-weight:600}
article.item{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.6em 0}
article.item.failed{border-color:#c0392b;background:#fdf2f1}.err{color:#c0392b;font-weight:600}
.tag{display:inline-block;background:#eee;border-radius:3px;padding:0 .4em;margin-left:.4em;font-size:85%}
.score{float:right;font-weight:600}.audio{display:flex;gap:1em;flex-wrap:wrap;align-items:center}
dl.fields{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.4em 0}
dl.fields dt{color:#666}code{font-size:90%}.filters{position:sticky;top:0;background:#fff;padding:.4em 0}
"""

_JS = """
function applyFilter(){
  const dim=document.getElementById('f-dim').value, onlyErr=document.getElementById('f-err').checked;
  document.querySelectorAll('article.item').forEach(a=>{
    a.hidden=(dim&&a.dataset.dimension!==dim)||(onlyErr&&a.dataset.error!=='1');});
  document.querySelectorAll('section.dimension').forEach(s=>{
    s.hidden=!s.querySelector('article.item:not([hidden])');});
}
function checkAudio(){
  const out=document.getElementById('audio-check'), audios=Array.from(document.querySelectorAll('audio'));
  let failed=0;
  const update=()=>{const ready=audios.filter(a=>a.readyState>=1).length;
    out.dataset.ready=ready;out.dataset.failed=failed;out.textContent=ready+'/'+audios.length;};
  out.dataset.total=audios.length;
  audios.forEach(a=>{a.addEventListener('loadedmetadata',update);
    a.addEventListener('error',()=>{failed++;update();});a.preload='metadata';a.load();});
  update();
}
document.addEventListener('DOMContentLoaded',()=>{
  document.getElementById('f-dim').addEventListener('change',applyFilter);
  document.getElementById('f-err').addEventListener('change',applyFilter);
  if(new URLSearchParams(location.search).get('check-audio')==='1')checkAudio();
});
"""


def audio_src(path: str | None, html_dir: Path) -> str | None:
    """``path`` (absolute or relative to the cwd) as a URL relative to the report's folder."""
    if not path:
        return None
    target = Path(path).resolve()
    try:
        rel = os.path.relpath(target, html_dir.resolve())
    except ValueError:  # another drive (Windows): only an absolute URL can reach it
        return target.as_uri()
    return quote(rel.replace(os.sep, "/"))


def _table_html(table: Mapping[str, Any], *, categories: bool) -> str:
    first = "Split / dimension / category" if categories else "Split / dimension"
    out = [f"<table><thead><tr><th>{first}</th><th>Mean [95% CI]</th><th>n</th><th>Errors</th></tr></thead><tbody>"]
    for kind, label, stat in table_rows(table, categories=categories):
        out.append(f'<tr class="{kind}"><td>{escape(label)}</td><td class="num">{escape(format_stat(stat))}</td>'
                   f'<td class="num">{stat.get("n", "")}</td><td class="num">{stat.get("errors", "")}</td></tr>')
    return "".join(out) + "</tbody></table>"


def chart_svg(table: Mapping[str, Any]) -> str:
    """A bar per (split, dimension) with a mean; whiskers span the 95% interval. Inline SVG."""
    bars = [(split, dim, stat) for split, body in table.get("splits", {}).items()
            for dim, stat in body["dimensions"].items() if stat.get("mean") is not None]  # fmt: skip
    bars.sort(key=lambda b: (DIMENSIONS.index(b[1]), SPLITS.index(b[0])))
    bar_w, gap, left, top, plot_h = 34, 22, 40, 12, 200
    width = left + len(bars) * (bar_w + gap) + gap
    height = top + plot_h + 44

    def y(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(SCORE_MAX, v)) / SCORE_MAX)

    svg = (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="mean score per dimension with 95% intervals">')
    parts = [svg]
    for tick in range(int(SCORE_MAX) + 1):
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11">{tick}</text>')
    for k, (split, dim, stat) in enumerate(bars):
        x = left + gap + k * (bar_w + gap)
        mean = stat["mean"]
        colour = SPLIT_COLOURS.get(split, "#888")
        label = f"{split} / {dim}: {format_stat(stat)} (n={stat.get('n')})"
        parts.append(f'<rect class="bar" data-split="{escape(split)}" data-dimension="{escape(dim)}" '
                     f'data-mean="{mean:.4f}" x="{x}" y="{y(mean):.1f}" width="{bar_w}" '
                     f'height="{y(0) - y(mean):.1f}" fill="{colour}"><title>{escape(label)}</title></rect>')
        if stat.get("ci95"):
            lo, hi = stat["ci95"]
            cx = x + bar_w / 2
            parts.append(f'<g class="whisker" stroke="#222">'
                         f'<line x1="{cx}" x2="{cx}" y1="{y(lo):.1f}" y2="{y(hi):.1f}"/>'
                         f'<line x1="{cx - 6}" x2="{cx + 6}" y1="{y(lo):.1f}" y2="{y(lo):.1f}"/>'
                         f'<line x1="{cx - 6}" x2="{cx + 6}" y1="{y(hi):.1f}" y2="{y(hi):.1f}"/></g>')
        parts.append(f'<text x="{x + bar_w / 2}" y="{top + plot_h + 16}" text-anchor="middle" font-size="11">'
                     f'{escape(dim)}</text><text x="{x + bar_w / 2}" y="{top + plot_h + 30}" text-anchor="middle" '
                     f'font-size="10" fill="#666">{escape(split)}</text>')
    return "".join(parts) + "</svg>"


def _compact(value: Any) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _item_html(item: ItemResult, html_dir: Path) -> str:
    failed = item.error is not None
    score = "—" if item.score is None else f"{item.score:.2f}"
    head = (f'<article class="item{" failed" if failed else ""}" id="item-{escape(item.id)}" '
            f'data-dimension="{escape(item.dimension)}" data-error="{int(failed)}">'
            f'<h4>{escape(item.id)}<span class="tag">{escape(item.split)}</span><span class="tag">'
            f'{escape(item.style)}</span><span class="score">score {escape(score)}</span></h4><div class="audio">')
    out = [head]
    for name, path in (("query", item.query_audio), ("response", item.response_audio)):
        src = audio_src(path, html_dir)
        if src is None:
            out.append(f'<span class="err">no {name} audio</span>')
        else:
            out.append(f'<span>{name}</span><audio class="{name}" controls preload="none" src="{escape(src)}"></audio>')
    out.append("</div>")
    if failed:
        err = item.error
        out.append(f'<p class="err">ERROR ({escape(err.stage)}: {escape(err.type)}): {escape(err.message)}</p>')
    fields = [("Verdict", item.rationale), ("Query transcript", item.query_transcript),
              ("Response transcript", item.response_transcript), ("Query labels", item.query_labels),
              ("Response tone", item.response_tone)]  # fmt: skip
    out.append('<dl class="fields">')
    out += [f"<dt>{name}</dt><dd>{escape(_compact(value))}</dd>" for name, value in fields]
    return "".join(out) + "</dl></article>"


def html_report(doc: Mapping[str, Any], out_path: Path) -> None:
    """Write the report for a results document to ``out_path`` (one HTML file)."""
    out_path = Path(out_path)
    html_dir = out_path.parent
    table = doc_table(doc)
    items = [as_item(i) for i in doc.get("items", [])]
    system = str(doc.get("run", {}).get("system", "?"))
    dims_present = [d for d in DIMENSIONS if any(i.dimension == d for i in items)]
    options = "".join(f'<option value="{escape(d)}">{escape(d)}</option>' for d in dims_present)
    parts = [
        (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ParaS2SBench: {escape(system)}</title>'
         f"<style>{_CSS}</style><script>{_JS}</script></head><body>"),
        f"<h1>ParaS2SBench: {escape(system)}</h1><dl class=\"run\">",
        "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in report_header(doc)),
        "</dl><h2>Scores (1-5)</h2>", _table_html(table, categories=False),
        "<h2>Mean per dimension, 95% interval</h2>", chart_svg(table),
        "<h2>By category</h2>", _table_html(table, categories=True),
        (f'<h2>Items ({len(items)})</h2><div class="filters"><label>dimension <select id="f-dim">'
         f'<option value="">all</option>{options}</select></label> <label><input type="checkbox" id="f-err"> '
         'errors only</label></div><div id="audio-check" hidden></div>'),
    ]  # fmt: skip
    for dim in dims_present:
        parts.append(f'<section class="dimension" data-dimension="{escape(dim)}"><h3>{escape(dim)}</h3>')
        parts += [_item_html(i, html_dir) for i in items if i.dimension == dim]
        parts.append("</section>")
    parts.append("</body></html>\n")
    tmp = out_path.with_suffix(".html.tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    tmp.replace(out_path)
