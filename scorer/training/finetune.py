"""Fine-tune the pretrained EfficientNet-Lite on labelled covers, then export it to ONNX.

The recipe: random square crops (60-100% of the area) resized to 224 and horizontal flips,
store-artefact augmentation, genre-balanced label-smoothed loss, AdamW with a one-cycle
schedule (the new genre layer learns 10x faster than the pretrained body), 6 epochs, every
layer trained. CPU by default, CUDA when torch sees a GPU.

``freeze_blocks`` keeps the stem and the first blocks (the 112 and 56 px stages: generic edges
and textures) at their ImageNet weights and batch-norm statistics: they are the costliest layers
to train on a CPU. On fold 1 of the 9-genre CV, 4 epochs with 3 blocks frozen took about 160 s an
epoch and 6 epochs of every layer about 210 s, and the latter scored 0.014-0.047 higher with
every CNN head; see the README.

Covers are decoded once, at 256x256, and augmented per batch as tensors. Every epoch draws its
order and augmentations from ``(seed, epoch)``, and a checkpoint is written atomically after
each epoch: an interrupted run started again with the same covers and recipe resumes after the
last finished epoch and ends with the same weights.

The exported graph has the shipped featurizer's interface (uint8 NHWC ``images`` in,
``features`` out) so scoring needs nothing new; its ``logits`` output is the genre layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scorer.decode import IMAGE_SIZE
from scorer.featurize.cnn import default_threads
from scorer.files import temp_beside
from scorer.training.augment import DECODE_SIZE, augment, decode_all
from scorer.training.dataset import Example, sha256_file
from scorer.training.export_featurizer import ARCHS, compare, load_torch_model, onnx_export, wrap
from scorer.training.trunk import TrunkViews, tail_forward

Log = Callable[[str], None] | None
#: EfficientNet-Lite0 has 16 blocks; leave at least the last stage trainable
MAX_FREEZE = 15
CLASS_WEIGHTINGS = ("balanced", "none")
AUGMENTS = ("store", "basic")


@dataclass(frozen=True)
class Recipe:
    arch: str = "lite0"
    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-4  # peak learning rate of the pretrained body; the genre layer gets 10x
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    min_crop_area: float = 0.6
    freeze_blocks: int = 0  # the stem and this many first blocks stay as pretrained (0: none)
    seed: int = 0
    #: "balanced": the loss weighs each genre by the inverse of its covers; "none": by cover
    class_weighting: str = "balanced"
    #: "store": also erase what tells one store's covers from another's (JPEG re-compression,
    #: down- and up-scaling, colour jitter); "basic": crops and flips only
    augment: str = "store"
    #: pixels of the training crops; the network is exported for, and scores at, 224 either way. 160 trains
    #: about 3x as fast as 224 on a CPU; on the shared covers (grouped 5-fold CV) the blend's balanced accuracy
    #: was 0.442 with 160 and 0.451 with 224
    size: int = 160

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"--arch {self.arch}: use one of {', '.join(sorted(ARCHS))}")
        if self.epochs < 1:
            raise ValueError(f"--epochs {self.epochs}: need at least 1")
        if not 0 <= self.freeze_blocks <= MAX_FREEZE:
            raise ValueError(f"--freeze-blocks {self.freeze_blocks}: use 0 (train every layer) to {MAX_FREEZE}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"--class-weighting {self.class_weighting}: use one of {', '.join(CLASS_WEIGHTINGS)}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"--augment {self.augment}: use one of {', '.join(AUGMENTS)}")
        if not 96 <= self.size <= DECODE_SIZE:
            raise ValueError(f"--train-size {self.size}: use 96 to {DECODE_SIZE} pixels")

    def describe_augmentation(self) -> str:
        text = (f"random square crop of {self.min_crop_area:.0%}-100% of the area of a {DECODE_SIZE}px cover, "
                f"resized to {self.size}; horizontal flip")
        if self.augment == "store":
            text += ("; store artefacts erased: JPEG re-compression at quality 20-95 (p 0.5), down-scaling to "
                     "35-100% and back (p 0.3), brightness/contrast/saturation jitter of up to 15% (p 0.5)")
        return text


@dataclass
class Finetuned:
    """A fine-tuned network (torch, eval mode) and what happened while training it."""

    model: Any  # the ``wrap``-ped network: uint8 NHWC → (features, genre logits)
    genres: list[str]
    recipe: Recipe
    history: list[dict] = field(default_factory=list)
    device: str = "cpu"


def data_fingerprint(examples: list[Example], genres: list[str]) -> str:
    h = hashlib.sha256()
    for e in sorted(examples, key=lambda e: e.sha256):
        h.update(f"{e.sha256}\t{e.genre}\n".encode())
    h.update("\t".join(genres).encode())
    return h.hexdigest()


class WeightedLoss:
    """Label-smoothed cross-entropy where each cover weighs as its genre does.

    torch's own ``weight=`` also weighs the smoothing mass that every cover spreads over the other
    genres (pytorch/pytorch#104776), which pushes every cover towards the rarest genre; here the
    weight is the cover's."""

    def __init__(self, genre_weight, label_smoothing: float):
        import torch

        self.genre_weight = genre_weight
        self.per_cover = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=label_smoothing)

    def __call__(self, logits, y):
        w = self.genre_weight[y]
        return (self.per_cover(logits, y) * w).sum() / w.sum()


def build(arch: str, n_genres: int):
    """The pretrained network with a fresh genre layer, wrapped (uint8 NHWC in, features + logits out)."""
    import torch

    net, _ = load_torch_model(arch)
    net._fc = torch.nn.Linear(net._fc.in_features, n_genres)
    return wrap(net)


def frozen_modules(model, blocks: int) -> list:
    """The stem and the first ``blocks`` blocks of a ``build``-ed network (none when ``blocks`` is 0)."""
    net = model.net
    return [net._conv_stem, net._bn0, *net._blocks[:blocks]] if blocks else []


def finetune(examples: list[Example], genres: list[str], recipe: Recipe, work_dir: Path | None = None,
             log: Log = None, stop_after: int | None = None, views: TrunkViews | None = None) -> Finetuned:
    """Fine-tune on ``examples``. With ``work_dir``, checkpoints there and resumes from it.

    ``stop_after`` ends after that many epochs in this call (as an interruption would), leaving
    the checkpoint to resume from. With ``recipe.freeze_blocks``, the frozen part runs once per cover
    and epoch (:class:`scorer.training.trunk.TrunkViews`; pass ``views`` to share it between fine-tunings of
    the same covers) and only the rest of the network is trained.
    """
    import torch

    torch.set_num_threads(default_threads())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    index = {g: i for i, g in enumerate(genres)}
    y_all = torch.tensor([index[e.genre] for e in examples])
    torch.manual_seed(recipe.seed)  # the new genre layer's initial weights
    model = build(recipe.arch, len(genres)).to(device).to(memory_format=torch.channels_last)
    frozen = frozen_modules(model, recipe.freeze_blocks)
    for module in frozen:
        module.requires_grad_(False)
    head = list(model.net._fc.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    opt = torch.optim.AdamW([{"params": body, "lr": recipe.lr}, {"params": head, "lr": recipe.lr * 10}],
                            weight_decay=recipe.weight_decay)
    steps = -(-len(examples) // recipe.batch_size)
    sched: torch.optim.lr_scheduler.LRScheduler
    if steps * recipe.epochs >= 3:
        # a quarter of the steps warm up; very small sets need two at least, or the schedule divides by 0
        warmup = min(0.5, max(0.25, 2.0 / (steps * recipe.epochs)))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[recipe.lr, recipe.lr * 10], epochs=recipe.epochs,
                                                    steps_per_epoch=steps, pct_start=warmup)
    else:  # one or two steps in all: no room to warm up and anneal, so the peak rates throughout
        for group, peak in zip(opt.param_groups, (recipe.lr, recipe.lr * 10)):
            group["lr"] = peak
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    genre_weight = torch.ones(len(genres))
    if recipe.class_weighting == "balanced":
        from scorer.training.heads import class_weights

        genre_weight = torch.tensor(class_weights(y_all.numpy(), len(genres)), dtype=torch.float32)
    loss_fn = WeightedLoss(genre_weight.to(device), recipe.label_smoothing)
    history: list[dict] = []
    start_epoch = 0
    fingerprint = data_fingerprint(examples, genres)
    ckpt = Path(work_dir) / "checkpoint.pt" if work_dir else None
    if ckpt and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if state["recipe"] == asdict(recipe) and state["data"] == fingerprint:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start_epoch, history = state["epoch"], state["history"]
            if log:
                log(f"resuming after epoch {start_epoch}/{recipe.epochs} from {ckpt}")
        elif log:
            log(f"{ckpt} is for other covers or another recipe: starting afresh")

    cached = bool(recipe.freeze_blocks) and start_epoch < recipe.epochs
    own_views = cached and views is None
    if own_views:
        views = TrunkViews(examples, recipe.arch, recipe.freeze_blocks, recipe.seed, recipe.min_crop_area,
                           recipe.augment == "store", log, size=recipe.size)
    rows = views.rows(examples) if cached and views is not None else None
    images = torch.from_numpy(decode_all(examples)) if start_epoch < recipe.epochs and not cached else None
    try:
        _epochs(model, frozen, opt, sched, loss_fn, y_all, images, views, rows, recipe, start_epoch, history,
                stop_after, ckpt, fingerprint, device, log)
    finally:
        if own_views and views is not None:
            views.close()
    model.eval()
    return Finetuned(model.cpu().to(memory_format=torch.contiguous_format), list(genres), recipe, history, device)


def _epochs(model, frozen, opt, sched, loss_fn, y_all, images, views, rows, recipe: Recipe, start_epoch: int,
            history: list[dict], stop_after: int | None, ckpt: Path | None, fingerprint: str, device: str,
            log: Log) -> None:
    """The training epochs from ``start_epoch``: on decoded covers, or on the frozen trunk's activations of
    each epoch's views (``views``, ``rows``: the covers' rows there)."""
    import torch

    n = len(y_all)
    done_here = 0
    for epoch in range(start_epoch, recipe.epochs):
        if stop_after is not None and done_here >= stop_after:
            break
        t0 = time.perf_counter()
        rng = np.random.default_rng([recipe.seed, epoch])
        torch.manual_seed(recipe.seed * 1000 + epoch)  # dropout and drop-connect
        model.train()
        for module in frozen:
            module.eval()  # frozen layers keep their ImageNet batch-norm statistics too
        order = rng.permutation(n)
        acts = views.epoch(epoch) if views is not None else None
        total, correct, seen = 0.0, 0, 0
        for b in range(0, len(order), recipe.batch_size):
            idx = torch.from_numpy(order[b:b + recipe.batch_size])
            y = y_all[idx].to(device)
            if acts is not None:
                x = torch.from_numpy(acts[rows[idx.numpy()]].astype(np.float32))
                x = x.to(device).contiguous(memory_format=torch.channels_last)
                _, logits = tail_forward(model.net, recipe.freeze_blocks, x)
            else:
                x = augment(images[idx], rng, recipe.min_crop_area, size=recipe.size,
                            store=recipe.augment == "store").to(device)
                _, logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        history.append({"epoch": epoch + 1, "loss": round(total / seen, 5), "train_accuracy": round(correct / seen, 4),
                        "seconds": round(time.perf_counter() - t0, 1)})
        done_here += 1
        if log:
            h = history[-1]
            log(f"epoch {h['epoch']}/{recipe.epochs}: loss {h['loss']:.4f}, train accuracy "
                f"{h['train_accuracy']:.3f} ({h['seconds']:.0f}s)")
        if ckpt:
            _save_atomic({"epoch": epoch + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                          "scheduler": sched.state_dict(), "history": history, "recipe": asdict(recipe),
                          "data": fingerprint}, ckpt)


def _save_atomic(state: dict, path: Path) -> None:
    import torch

    tmp = temp_beside(path)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_finetuned(ft: Finetuned, out_dir: Path, check: np.ndarray, stem: str | None = None,
                     training_set: dict | None = None) -> Path:
    """Write ``<stem>.onnx`` + ``<stem>.json`` and check the graph against torch on ``check`` (uint8 covers)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or f"efficientnet-{ft.recipe.arch}-finetuned"
    path = out_dir / f"{stem}.onnx"
    onnx_export(ft.model, path)
    diff_features, diff_logits = compare(ft.model, path, check)
    sha = sha256_file(path)
    meta = {
        "id": f"efficientnet-{ft.recipe.arch}-finetuned-{sha[:12]}",
        "arch": f"efficientnet-{ft.recipe.arch}",
        "file": path.name,
        "sha256": sha,
        "genres": ft.genres,
        "input": {"name": "images", "dtype": "uint8", "layout": "NHWC", "size": IMAGE_SIZE},
        "outputs": {"features": int(ft.model.net._fc.in_features), "logits": len(ft.genres)},
        "preprocessing": {"colour": "RGB", "resize": f"{IMAGE_SIZE}x{IMAGE_SIZE} bilinear, no crop",
                          "normalisation": "in graph"},
        "finetuning": {"recipe": asdict(ft.recipe), "history": ft.history, "device": ft.device,
                       "augmentation": ft.recipe.describe_augmentation(),
                       "training_set": training_set},
        "export_check": {"images": int(check.shape[0]), "max_abs_diff_features": diff_features,
                         "max_abs_diff_logits": diff_logits},
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def genre_layer(ft: Finetuned) -> tuple[np.ndarray, np.ndarray]:
    """The network's genre layer as ``(W, b)``: its softmax is ``softmax(features @ W + b)``."""
    fc = ft.model.net._fc
    return fc.weight.detach().numpy().T.astype(np.float32), fc.bias.detach().numpy().astype(np.float32)
