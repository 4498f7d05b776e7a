"""The shipped model's outputs for eight fixed covers, pinned in ``tests/golden.json`` (tests/test_golden.py).

The covers are ``scorer demo``'s drawn ones (seeded, :func:`scorer.cli.demo.draw_cover`), JPEG-encoded in
memory, so they exist on every machine and go through the whole scoring path: sniffing, decoding, the
network at each precision, the familiarity scale, the heads and their calibration.

After a deliberate change of the shipped model (or of what scoring computes), regenerate and commit:

    python tests/golden.py --update
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
from pathlib import Path

GOLDEN = Path(__file__).with_name("golden.json")
UPDATE = "python tests/golden.py --update"
PRECISIONS = ("fp32", "int8")
#: the default head (blend, shipped uncalibrated), then calibrated ones: with a familiarity slope, with a uniform mix
HEADS = (None, "ensemble", "cnn-network", "cnn-knn")
COVERS = 8
#: run to run on one machine the outputs are equal to the last bit; scored one cover a batch on one worker instead
#: of the default batches they differ by up to 4.8e-7 (the network adds its float sums in another order), so 1e-5
TOLERANCE = 1e-5


def cover_bytes() -> list[bytes]:
    """``scorer demo``'s first eight covers (one per palette), as JPEG bytes of quality 90."""
    from scorer.cli.demo import PALETTES, draw_cover

    out = []
    for i, palette in enumerate(list(PALETTES.values())[:COVERS]):
        buf = io.BytesIO()
        draw_cover(i, palette).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def model_checksum(directory: Path) -> str:
    """sha256 over every file of the model directory (relative path and contents, sorted by path)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(file.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def covers_checksum(covers: list[bytes]) -> str:
    return hashlib.sha256(b"".join(hashlib.sha256(c).digest() for c in covers)).hexdigest()


def frames(covers: list[bytes], **score_args) -> dict:
    """``{"<precision>/<head>": (model, scorer.score's DataFrame)}`` for every precision and head pinned."""
    import scorer

    out = {}
    for precision in PRECISIONS:
        model = scorer.load_model(precision=precision)
        for head in HEADS:
            df = scorer.score(covers, model=model, head=head, cache=False, **score_args)
            assert (df["status"] == "ok").all(), df[["status", "error"]]
            out[f"{precision}/{head or model.default_head}"] = (model, df)
    return out


def outputs(scored: dict) -> dict[str, dict[str, list]]:
    """``{"<precision>/<head>": {column: [value per cover]}}``: the pinned columns of :func:`frames`."""
    out = {}
    for key, (model, df) in scored.items():
        columns = ["genre", "genre_prob", "familiarity", *(f"p_{g}" for g in model.genres)]
        out[key] = {c: [v if isinstance(v, str) else float(v) for v in df[c]] for c in columns}
    return out


def current() -> dict:
    """What :data:`GOLDEN` holds, computed now."""
    import numpy
    import onnxruntime
    import PIL

    import scorer

    model = scorer.load_model()
    covers = cover_bytes()
    return {"regenerate": UPDATE,
            "model": {"version": model.spec.version, "sha256": model_checksum(model.dir)},
            "covers": {"what": "scorer demo's draw_cover(i, palette i) for i in 0..7, JPEG quality 90, in memory",
                       "sha256": covers_checksum(covers)},
            "made_with": {"pillow": PIL.__version__, "onnxruntime": onnxruntime.__version__,
                          "numpy": numpy.__version__},
            "tolerance": TOLERANCE,
            "outputs": outputs(frames(covers))}


def main(argv: list[str]) -> int:
    if argv != ["--update"]:
        print(f"usage: {UPDATE}  (rewrites {GOLDEN.name} from the shipped model)", file=sys.stderr)
        return 2
    data = current()
    text = json.dumps(data, indent=1)
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)  # a list a line
    GOLDEN.write_text(text + "\n")
    print(f"{GOLDEN}: model {data['model']['version']}, {len(data['outputs'])} precision/head pairs of {COVERS} covers")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main(sys.argv[1:]))
