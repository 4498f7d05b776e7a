"""The network ``scorer train`` and ``scorer evaluate`` fit their heads on without ``--finetune``.

By default the shipped genre model's network (``models/default``: EfficientNet-Lite0 fine-tuned on the shared
covers), frozen. Measured with networks of the same recipe that never saw the covers they were judged on
(``benchmarks/featurizer_choice.py``), grouped CV of the heads on its features came out 0.04-0.10 ahead of the
same heads on the ImageNet network's on three sets and level (within 0.012) on the other two. A model
trained on it records the same network id as the genre model, so the two can score in one pass and run the
network once. ``--featurizer imagenet`` keeps the frozen ImageNet network; ``--featurizer FILE`` takes any
ONNX featurizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scorer.training.evaluate import FEATURIZER_KINDS
from scorer.training.heads import HEAD_KINDS

#: every head ``scorer train`` can fit: each head kind on the network's features and on the colour histogram
ALL_HEADS = tuple(f"{f}-{h}" for f in FEATURIZER_KINDS for h in HEAD_KINDS)
#: the heads fitted without ``--finetune`` unless ``--heads`` says otherwise: every kind on the network's
#: features. The colour-histogram heads do not depend on the network; with the fine-tuned one they lowered the
#: ensemble by 0.026-0.036 on covers it never saw (a first run of benchmarks/featurizer_choice.py with them) and
#: cost as much time again (an XGBoost fit on the 512-bin histogram takes longer than one on the CNN features)
DEFAULT_HEADS = tuple(f"cnn-{h}" for h in HEAD_KINDS)
#: ``--featurizer`` names: the shipped genre model's network (the default), the ImageNet one
DEFAULT, IMAGENET = "default", "imagenet"
NAMES = (DEFAULT, IMAGENET)


@dataclass(frozen=True)
class Network:
    """An ONNX featurizer file, what it is (``name``: ``default``, ``imagenet`` or ``file``), in words, and the
    precision a model fitted on it scores with by default (``None``: chosen from the CV, as for any file)."""

    path: Path
    name: str
    description: str
    default_precision: str | None = None


def default_network() -> Network:
    """The shipped genre model's network at the precision that model scores with (fp32), so a model trained on
    it shares the network's id with the genre model."""
    from scorer.manifest import read_manifest
    from scorer.model import default_model_dir

    directory = default_model_dir()
    manifest = read_manifest(directory / "manifest.json")
    cnn = manifest.cnn
    path = (directory / cnn.variants["fp32"]["file"]).resolve()
    tuned = (f" (fine-tuned on {(manifest.training_set or {}).get('source', 'the shared covers')})"
             if "finetuning" in cnn.spec else "")
    return Network(path, DEFAULT, f"the shipped genre model's network, {manifest.version}{tuned}, frozen",
                   default_precision="fp32")


def imagenet_network() -> Network:
    from scorer.model import shipped_featurizer

    return Network(shipped_featurizer(), IMAGENET, "EfficientNet-Lite0 with its ImageNet weights, frozen")


def resolve_network(featurizer: str | Path | None) -> Network:
    """``--featurizer``: nothing or ``default`` (the shipped genre model's network), ``imagenet``, or an ONNX file.
    ``ValueError`` (naming the flag) when the file is missing."""
    if featurizer is None or str(featurizer) == DEFAULT:
        return default_network()
    if str(featurizer) == IMAGENET:
        return imagenet_network()
    path = Path(featurizer)
    if not path.is_file():
        raise ValueError(f"--featurizer {featurizer}: no such ONNX file (or use {' or '.join(NAMES)})")
    return Network(path, "file", f"{path.name}, frozen")
