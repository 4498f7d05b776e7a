"""``scorer demo``: draw a small catalog of covers, score it with the shipped model, show the result.

Needs no network and no credentials: the covers are generated here (seeded), so the demo is the
real pipeline end to end on files that exist on every machine.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

PALETTES = {
    "neon night": [(255, 0, 153), (0, 255, 255), (20, 0, 40)],
    "desert dust": [(222, 184, 135), (160, 82, 45), (250, 240, 220)],
    "black metal": [(10, 10, 10), (60, 60, 60), (200, 200, 200)],
    "summer pop": [(255, 105, 180), (255, 223, 0), (135, 206, 250)],
    "forest folk": [(34, 85, 34), (139, 115, 85), (240, 230, 200)],
    "blue note": [(0, 51, 102), (255, 255, 255), (0, 153, 204)],
    "rust belt": [(120, 40, 20), (30, 30, 30), (230, 200, 150)],
    "candy": [(255, 182, 193), (255, 255, 255), (173, 216, 230)],
}


def draw_cover(seed: int, palette: list[tuple[int, int, int]], size: int = 600) -> Image.Image:
    rng = random.Random(seed)
    bg, fg, accent = palette
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    for y in range(size):  # vertical gradient from bg towards accent
        t = y / size * 0.6
        d.line([(0, y), (size, y)], fill=tuple(int(b * (1 - t) + a * t) for b, a in zip(bg, accent)))
    for _ in range(rng.randint(3, 9)):
        x0, y0 = rng.randrange(size), rng.randrange(size)
        r = rng.randint(size // 12, size // 3)
        shape = rng.choice(["ellipse", "rectangle", "line"])
        colour = rng.choice([fg, accent])
        if shape == "ellipse":
            d.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], outline=colour, width=rng.randint(2, 12))
        elif shape == "rectangle":
            d.rectangle([x0 - r, y0 - r // 2, x0 + r, y0 + r // 2], fill=colour)
        else:
            d.line([(x0, y0), (rng.randrange(size), rng.randrange(size))], fill=colour, width=rng.randint(3, 20))
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
    ImageDraw.Draw(img).text((size // 12, size - size // 8), f"VOL. {seed}", fill=fg)
    return img


def draw_covers(folder: Path, count: int, seed: int = 0, size: int = 600) -> list[Path]:
    """Save ``count`` drawn JPEG covers into ``folder``, one palette after another."""
    folder.mkdir(parents=True, exist_ok=True)
    palettes = list(PALETTES.items())
    files = []
    for i in range(count):
        name, palette = palettes[i % len(palettes)]
        file = folder / f"{name.replace(' ', '-')}-{i + 1}.jpg"
        draw_cover(seed + i, palette, size=size).save(file, quality=90)
        files.append(file)
    return files


def make_catalog(folder: Path, per_palette: int = 3) -> Path:
    """Write covers and ``catalog.csv`` (with one row whose file is missing, to show error rows)."""
    files = draw_covers(folder / "covers", per_palette * len(PALETTES))
    names = list(PALETTES)
    rows = [{"id": f"demo-{i:03d}", "title": f"{names[i % len(names)].title()} Vol. {i // len(names) + 1}",
             "artist": "The Demo Band", "cover_url": f"covers/{file.name}"} for i, file in enumerate(files)]
    rows.append({"id": "demo-missing", "title": "Lost Tapes", "artist": "Nobody", "cover_url": "covers/missing.jpg"})
    path = folder / "catalog.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "title", "artist", "cover_url"])
        w.writeheader()
        w.writerows(rows)
    return path


def run_demo(folder: Path, keep: str | None) -> None:
    import pyarrow.parquet as pq
    from rich.console import Console
    from rich.table import Table

    from scorer.api import score_catalog
    from scorer.cli.console import print_summary

    catalog = make_catalog(Path(folder))
    out = Path(folder) / "scored.parquet"
    summary = score_catalog(catalog, out, keep=keep).summary
    t = Table("title", "status", "top genre", "prob", "kept", title=f"{catalog} → {out}")
    for r in pq.read_table(out).to_pylist():
        prob = "" if r["status"] != "ok" else f"{r['genre_prob']:.2f}"
        t.add_row(r["title"], r["status"], r["genre"] or "", prob, "yes" if r["kept"] else "")
    console = Console(highlight=False, soft_wrap=True)
    console.print(t)
    print_summary(summary, out)
    console.print("These covers are drawn here (shapes in a palette named like a genre), not album art: the "
                  "genres are what the model makes of them, not a test of it. Its measured figures: `scorer info`.")
