"""Plots as inline SVG: crisp at any zoom, no plotting library, and points can carry filter data."""

from __future__ import annotations

import numpy as np

from scorer.insight.page import esc, genre_colour

#: ColorBrewer "Blues", light to dark
BLUES = np.array([[247, 251, 255], [222, 235, 247], [198, 219, 239], [158, 202, 225], [107, 174, 214],
                  [66, 146, 198], [33, 113, 181], [8, 81, 156], [8, 48, 107]], dtype=np.float64)


def _blue(v: float) -> str:
    """A share in [0, 1] as a colour of the Blues scale."""
    pos = min(max(v, 0.0), 1.0) * (len(BLUES) - 1)
    i = min(int(pos), len(BLUES) - 2)
    r, g, b = (BLUES[i] + (BLUES[i + 1] - BLUES[i]) * (pos - i)).round().astype(int)
    return f"rgb({r},{g},{b})"


def confusion_heatmap(cm: np.ndarray | list, genres: list[str], title: str, cell: int = 58) -> str:
    """Confusion matrix normalised per true genre (row): each cell shows its share and its count."""
    cm = np.asarray(cm, dtype=np.int64)
    n = len(genres)
    support = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0)
    left, top = 96, 62
    w, h = max(left + n * cell + 12, 470), top + n * cell + 46
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
             f'role="img" aria-label="{esc(title)}" class="heatmap" font-family="sans-serif">',
             f'<text x="{left}" y="16" font-size="13" font-weight="600">{esc(title)}</text>',
             f'<text x="{left + n * cell / 2}" y="36" font-size="11" text-anchor="middle">predicted genre</text>',
             f'<text x="12" y="{top + n * cell / 2}" font-size="11" text-anchor="middle" '
             f'transform="rotate(-90 12 {top + n * cell / 2})">true genre</text>']
    for j, g in enumerate(genres):
        parts.append(f'<text x="{left + j * cell + cell / 2}" y="{top - 8}" font-size="10" '
                     f'text-anchor="middle">{esc(g[:10])}</text>')
    for i, g in enumerate(genres):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" font-size="10" '
                     f'text-anchor="end">{esc(g[:13])}</text>')
        for j in range(n):
            x = left + j * cell
            v = share[i, j]
            ink = "#fff" if v > 0.45 else "#1d232a"
            stroke = ' stroke="#1d232a" stroke-width="1.5"' if i == j else ' stroke="#fff"'
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_blue(v)}"{stroke}>'
                         f'<title>true {esc(g)}, predicted {esc(genres[j])}: {cm[i, j]} of {support[i, 0]} '
                         f'({v:.0%})</title></rect>')
            parts.append(f'<text x="{x + cell / 2}" y="{y + cell / 2}" font-size="12" text-anchor="middle" '
                         f'fill="{ink}">{v:.0%}</text>')
            parts.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 14}" font-size="9" text-anchor="middle" '
                         f'fill="{ink}">{cm[i, j]}</text>')
    parts.append(f'<text x="{left}" y="{top + n * cell + 18}" font-size="10" fill="#5d6873">'
                 f'rows: true genre, normalised per true genre (each row sums to 100%);</text>')
    parts.append(f'<text x="{left}" y="{top + n * cell + 31}" font-size="10" fill="#5d6873">'
                 f'cells: share of the row, and count. Diagonal: recall.</text>')
    parts.append("</svg>")
    return "".join(parts)


def scatter(xy: np.ndarray, labels: np.ndarray, genres: list[str], titles: list[str],
            thumbs: dict[int, str] | None = None, size: int = 760, axes: tuple[str, str] = ("", "")) -> str:
    """Points coloured by genre (``data-genre`` for the filters); ``thumbs`` puts a small cover image
    (shown when the map's ``covers`` class is on) at the given points."""
    xy = np.asarray(xy, dtype=np.float64)
    pad = 16
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    pos = pad + (xy - lo) / span * (size - 2 * pad)
    pos[:, 1] = size - pos[:, 1]  # y up
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + 20}" '
             f'viewBox="0 0 {size} {size + 20}" role="img" aria-label="embedding map" font-family="sans-serif">']
    order = np.random.default_rng(0).permutation(len(xy))  # no genre is always drawn on top
    for i in order:
        x, y = pos[i]
        g = genres[int(labels[i])]
        parts.append(f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{genre_colour(int(labels[i]))}" '
                     f'fill-opacity="0.75" data-genre="{esc(g)}"><title>{esc(titles[i])}</title></circle>')
    for i, href in (thumbs or {}).items():
        x, y = pos[i]
        g = genres[int(labels[i])]
        parts.append(f'<g class="thumb" data-genre="{esc(g)}"><image href="{esc(href)}" x="{x - 14:.1f}" '
                     f'y="{y - 14:.1f}" width="28" height="28"><title>{esc(titles[i])}</title></image>'
                     f'<rect x="{x - 14:.1f}" y="{y - 14:.1f}" width="28" height="28" fill="none" '
                     f'stroke="{genre_colour(int(labels[i]))}" stroke-width="2"/></g>')
    if any(axes):
        parts.append(f'<text x="{size / 2}" y="{size + 14}" font-size="11" text-anchor="middle" fill="#5d6873">'
                     f'{esc(axes[0])} →   ·   ↑ {esc(axes[1])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def reliability_diagram(curves: dict[str, dict], title: str, size: int = 300) -> str:
    """Reliability diagram: per bin of top-1 probability, the share of covers whose top genre was
    right, against the bin's mean top-1 probability. The diagonal is perfect calibration; each
    curve is a :func:`scorer.heads.calibration.reliability` result (``{"count", "confidence", "accuracy"}``),
    drawn with dots sized by the bin's covers."""
    left, top, pad = 44, 26, 10
    w, h = left + size + pad + 150, top + size + 44
    colours = ["#c0392b", "#1f6fb4", "#2e8b57", "#8e44ad"]

    def px(v: float) -> float:
        return left + v * size

    def py(v: float) -> float:
        return top + (1 - v) * size

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="{esc(title)}" class="reliability" font-family="sans-serif">',
             f'<text x="{left}" y="16" font-size="13" font-weight="600">{esc(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="#fafbfc" stroke="#c9ced3"/>',
             f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#8a949e" stroke-dasharray="4 3"/>']
    for v in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<text x="{px(v)}" y="{top + size + 14}" font-size="10" text-anchor="middle">{v:g}</text>')
        parts.append(f'<text x="{left - 5}" y="{py(v) + 3}" font-size="10" text-anchor="end">{v:g}</text>')
    parts.append(f'<text x="{left + size / 2}" y="{top + size + 30}" font-size="11" text-anchor="middle">'
                 f'top genre probability</text>')
    parts.append(f'<text x="12" y="{top + size / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + size / 2})">share right</text>')
    for k, (label, r) in enumerate(curves.items()):
        colour = colours[k % len(colours)]
        total = max(sum(r["count"]), 1)
        pts = [(c, a, n) for c, a, n in zip(r["confidence"], r["accuracy"], r["count"]) if n]
        path = " ".join(f"{'M' if i == 0 else 'L'}{px(c):.1f},{py(a):.1f}" for i, (c, a, _) in enumerate(pts))
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2" class="curve" '
                     f'data-label="{esc(label)}"/>')
        for c, a, n in pts:
            radius = 2 + 6 * (n / total) ** 0.5
            parts.append(f'<circle cx="{px(c):.1f}" cy="{py(a):.1f}" r="{radius:.1f}" fill="{colour}" '
                         f'fill-opacity="0.7"><title>{esc(label)}: {n} covers, mean probability {c:.2f}, '
                         f'{a:.0%} right</title></circle>')
        y = top + 14 + 18 * k
        parts.append(f'<rect x="{left + size + pad}" y="{y - 9}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{left + size + pad + 18}" y="{y + 1}" font-size="11">{esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
