"""The report page and the folder it is written to.

A report is ``DIR/index.html`` plus ``DIR/img/*.jpg``: it opens from disk with no network. The
folder is built beside ``DIR`` and renamed into place at the end, so a failed run never leaves a
half-written report, and an older report in ``DIR`` is replaced whole. A ``DIR`` holding anything
else is refused before any work starts.
"""

from __future__ import annotations

import html
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from scorer.errors import UsageError
from scorer.files import publish_dir

#: written into every report folder: only folders carrying it are ever replaced
MARKER = ".scorer-report"

#: Tableau 10, then a second, lighter set: categorical colours for genres
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#a0cbe8", "#ffbe7d", "#ff9d9a", "#8cd17d", "#f1ce63", "#d4a6c8")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def genre_colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def check_out_dir(out: Path) -> None:
    """Refuse ``out`` unless it is absent, empty, or an earlier report (raise :class:`UsageError`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(f"--out {out}: folder is not empty and holds no earlier report; "
                         "give a new or empty folder")


class ReportDir:
    """The staging folder of a report: images are saved into it as sections are drawn."""

    def __init__(self, out: Path):
        self.out = Path(out)
        check_out_dir(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}."))
        (self.root / "img").mkdir()
        self.images = 0

    def save_image(self, name: str, image: np.ndarray | Image.Image, quality: int = 85) -> str:
        """Save an RGB image as ``img/<name>.jpg``; returns the path to use in the page."""
        img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        rel = f"img/{name}.jpg"
        img.convert("RGB").save(self.root / rel, "JPEG", quality=quality)
        self.images += 1
        return rel

    def finish(self, page_html: str) -> Path:
        (self.root / "index.html").write_text(page_html, encoding="utf-8")
        (self.root / MARKER).write_text("written by scorer report\n")
        # an existing folder must still be ours: it may have changed while the report was drawn
        publish_dir(self.root, self.out, before_replacing=check_out_dir)
        return self.out / "index.html"

    def abort(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ReportDir:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


@dataclass
class Section:
    id: str
    title: str
    body: str  # HTML


class Page:
    def __init__(self, title: str, facts: dict[str, object]):
        self.title = title
        self.facts = facts
        self.sections: list[Section] = []

    def add(self, section: Section) -> None:
        self.sections.append(section)

    def render(self) -> str:
        nav = " · ".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in self.sections)
        facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in self.facts.items())
        body = "\n".join(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>\n{s.body}\n</section>'
                         for s in self.sections)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{esc(self.title)}</title><style>{CSS}</style></head>\n<body>\n"
                f"<header><h1>{esc(self.title)}</h1><dl class=\"facts\">{facts}</dl><nav>{nav}</nav></header>\n"
                f"<main>{body}</main>\n<footer>scorer report · {stamp}</footer>\n<script>{JS}</script>\n"
                f"</body></html>\n")


def filter_bar(target: str, genres: list[str], extra: str = "") -> str:
    """Checkboxes, one per genre, that show and hide the ``data-genre`` items inside ``#target``."""
    boxes = "".join(
        f'<label class="chip" style="border-color:{genre_colour(i)}"><input type="checkbox" data-key="genre" '
        f'value="{esc(g)}" checked><span class="swatch" style="background:{genre_colour(i)}"></span>{esc(g)}</label>'
        for i, g in enumerate(genres))
    return (f'<div class="filters" data-target="{esc(target)}">{boxes}{extra}'
            f'<span class="shown" aria-live="polite"></span></div>')


def select_filter(key: str, label: str, options: list[tuple[str, str]]) -> str:
    """A drop-down filter on ``data-<key>``; an empty value shows everything."""
    opts = "".join(f'<option value="{esc(v)}">{esc(t)}</option>' for v, t in options)
    return f'<label class="sel">{esc(label)} <select data-key="{esc(key)}">{opts}</select></label>'


def table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """An HTML table; cells are HTML (escape text before passing it)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def prob_bars(probs: dict[str, float], genres: list[str]) -> str:
    """Small horizontal bars, one per genre, for a tile."""
    rows = []
    for i, g in enumerate(genres):
        p = float(probs.get(g, 0.0))
        rows.append(f'<div class="bar"><span class="bl">{esc(g)}</span><span class="bt"><span class="bf" '
                    f'style="width:{p * 100:.1f}%;background:{genre_colour(i)}"></span></span>'
                    f'<span class="bv">{p:.2f}</span></div>')
    return "".join(rows)


CSS = """
:root{--fg:#1d232a;--muted:#5d6873;--line:#d9dee3;--bg:#fff;--panel:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:20px 28px 10px;border-bottom:1px solid var(--line);background:var(--panel)}
h1{margin:0 0 8px;font-size:22px}
h2{margin:0 0 12px;font-size:19px;border-bottom:1px solid var(--line);padding-bottom:6px}
h3{margin:18px 0 8px;font-size:15px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0 0 10px;color:var(--muted)}
.facts dt{font-weight:600}.facts dd{margin:0;overflow-wrap:anywhere}
nav a{margin-right:4px}
main{padding:8px 28px 28px}
section{margin:26px 0}
footer{padding:12px 28px;color:var(--muted);border-top:1px solid var(--line)}
.note{color:var(--muted);margin:4px 0 12px;max-width:70em}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.tile{width:148px;font-size:12px;background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:4px}
.tile img,.cover img{display:block;width:138px;height:138px;object-fit:cover;border-radius:2px}
.tile .t{font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.tile .s{color:var(--muted);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.tile.err{border-color:#e15759}.tile.kept{border:2px solid #59a14f}
.placeholder{width:138px;height:138px;display:flex;align-items:center;justify-content:center;text-align:center;
 background:#eceff2;color:#8a949d;border-radius:2px;padding:6px;overflow:hidden;font-size:11px;overflow-wrap:anywhere}
.badge{display:inline-block;padding:0 5px;border-radius:3px;font-size:11px;background:#59a14f;color:#fff}
.badge.drop{background:#bab0ac}.badge.err{background:#e15759}
.genre-row{margin-bottom:14px}
.bar{display:flex;align-items:center;gap:3px;font-size:10px;line-height:12px}
.bar .bl{width:52px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar .bt{flex:1;height:7px;background:#e6e9ec;border-radius:2px;overflow:hidden}
.bar .bf{display:block;height:100%}
.bar .bv{width:24px;text-align:right;color:var(--muted)}
table{border-collapse:collapse;margin:6px 0 14px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
thead th{background:var(--panel)}
.filters{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:6px 0 10px}
.chip{border:1px solid;border-radius:12px;padding:1px 8px 1px 4px;cursor:pointer;user-select:none}
.chip input{margin:0 4px 0 0;vertical-align:middle}
.swatch{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:4px}
.shown{color:var(--muted);margin-left:6px}
.heatmaps{display:flex;flex-wrap:wrap;gap:18px}
.heatmaps figure{margin:0}
figcaption{font-size:12px;color:var(--muted);max-width:430px}
.pairs{display:flex;flex-wrap:wrap;gap:12px}
.pair{background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:6px;font-size:12px}
.pair .imgs{display:flex;gap:4px}
.pair img{width:160px;height:160px;display:block}
.pair.wrong{border-color:#e15759}
.map svg{border:1px solid var(--line);background:#fff;max-width:100%;height:auto}
.map .thumb{display:none}.map.covers .thumb{display:inline}.map.covers .pt{opacity:.25}
"""

#: Filters: every control in a ``.filters`` bar narrows the items (``[data-genre]`` etc.) inside its target.
JS = """
(function(){
function apply(bar){
  var target=document.getElementById(bar.dataset.target); if(!target) return;
  var keys={};
  bar.querySelectorAll('input[type=checkbox][data-key]').forEach(function(b){
    var k=b.dataset.key; keys[k]=keys[k]||{}; if(b.checked) keys[k][b.value]=1;});
  var sels={};
  bar.querySelectorAll('select[data-key]').forEach(function(s){ if(s.value!=='') sels[s.dataset.key]=s.value; });
  target.querySelectorAll('[data-genre]').forEach(function(el){
    var ok=true;
    for(var k in keys){ if(!keys[k][el.getAttribute('data-'+k)]) ok=false; }
    for(var k2 in sels){ if(el.getAttribute('data-'+k2)!==sels[k2]) ok=false; }
    el.style.display=ok?'':'none';
  });
  var shown=0;  /* covers and points still on the page (a hidden row hides its tiles) */
  target.querySelectorAll('.tile,.pair,.pt').forEach(function(el){ if(el.getClientRects().length) shown++; });
  var out=bar.querySelector('.shown'); if(out) out.textContent=shown+' shown';
}
document.querySelectorAll('.filters').forEach(function(bar){
  bar.addEventListener('change',function(){apply(bar);}); apply(bar);});
document.querySelectorAll('[data-toggle-class]').forEach(function(box){
  box.addEventListener('change',function(){
    document.getElementById(box.dataset.target).classList.toggle(box.dataset.toggleClass, box.checked);});});
})();
"""
