"""The frozen part of a partly fine-tuned network, run once per cover and epoch, not once per split.

With ``--freeze-blocks N`` the stem and the first N blocks keep their ImageNet weights and batch-norm
statistics, so what they make of a cover depends on the cover and its augmentation only. Each
cover's augmented view for an epoch is drawn from ``(seed, epoch, cover)`` alone, the frozen part
(exported to ONNX, which runs it several times as fast as torch on a CPU) turns it into
activations once, and every fine-tuning on those covers (each CV fold, each held-out split, the
final model) trains only the rest of the network on them. The activations live in memory-mapped
files in a temporary folder beside the cache, in half precision.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scorer.featurize.cnn import default_threads
from scorer.fetch import default_cache_root
from scorer.training.dataset import Example

if TYPE_CHECKING:
    import torch

Log = Callable[[str], None] | None


def trunk_module(net, blocks: int):
    """float NHWC 0-255 in; the activations after the stem and the first ``blocks`` blocks out (eval mode)."""
    import torch

    from scorer.training.export_featurizer import MEAN, STD

    class Trunk(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)

        def forward(self, images):
            x = (images.permute(0, 3, 1, 2) - self.mean) / self.std
            x = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
            for block in self.net._blocks[:blocks]:
                x = block(x)
            return x

    return Trunk().eval()


def tail_forward(net, blocks: int, x):
    """The rest of the network on trunk activations: ``(pooled features, genre logits)``."""
    n = len(net._blocks)
    rate = net._global_params.drop_connect_rate
    for idx in range(blocks, n):
        x = net._blocks[idx](x, drop_connect_rate=rate * idx / n if rate else rate)
    x = net._swish(net._bn1(net._conv_head(x)))
    features = x.mean(dim=(2, 3))
    return features, net._fc(net._dropout(features))


class TrunkViews:
    """Per epoch, the frozen trunk's activations of every cover's augmented view (rows in ``examples`` order)."""

    def __init__(self, examples: list[Example], arch: str, blocks: int, seed: int, min_crop_area: float,
                 store: bool, log: Log = None, batch: int = 32, size: int = 224):
        self.examples, self.arch, self.blocks, self.seed = examples, arch, blocks, seed
        self.min_crop_area, self.store, self.log, self.batch, self.size = min_crop_area, store, log, batch, size
        self.row = {e.sha256: i for i, e in enumerate(examples)}
        root = default_cache_root()
        root.mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix="trunk-", dir=root)
        self._epochs: dict[int, np.ndarray] = {}
        self._session = None
        self._images: torch.Tensor | None = None

    def close(self) -> None:
        self._epochs.clear()
        self._dir.cleanup()

    def __enter__(self) -> TrunkViews:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def rows(self, examples: list[Example]) -> np.ndarray:
        return np.array([self.row[e.sha256] for e in examples], dtype=np.int64)

    def epoch(self, epoch: int) -> np.ndarray:
        """``(N, C, H, W)`` float16 activations of epoch ``epoch``'s views, computed on first use."""
        if epoch not in self._epochs:
            self._epochs[epoch] = self._compute(epoch)
        return self._epochs[epoch]

    def _compute(self, epoch: int) -> np.ndarray:
        import time

        import torch

        from scorer.training.augment import augment, decode_all

        t0 = time.perf_counter()
        session = self._trunk_session()
        if self._images is None:
            self._images = torch.from_numpy(decode_all(self.examples))
        out: np.ndarray | None = None
        for start in range(0, len(self.examples), self.batch):
            idx = range(start, min(start + self.batch, len(self.examples)))
            views = torch.cat([augment(self._images[i:i + 1], self._rng(epoch, i), self.min_crop_area, size=self.size,
                                       store=self.store)
                               for i in idx]).numpy()
            (act,) = session.run(["act"], {"images": np.ascontiguousarray(views, dtype=np.float32)})
            if out is None:
                out = np.lib.format.open_memmap(Path(self._dir.name) / f"epoch{epoch}.npy", mode="w+",
                                                dtype=np.float16, shape=(len(self.examples), *act.shape[1:]))
            out[start:start + len(act)] = act
        if self.log:
            self.log(f"frozen trunk ({self.blocks} blocks) on epoch {epoch + 1}'s views of {len(self.examples)} covers "
                     f"({time.perf_counter() - t0:.0f}s)")
        assert out is not None  # there are covers: one batch at least
        return out

    def _rng(self, epoch: int, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, int(self.examples[i].sha256[:15], 16)])

    def _trunk_session(self):
        if self._session is None:
            import onnxruntime as ort
            import torch

            from scorer.featurize.cnn import session_options
            from scorer.training.export_featurizer import load_torch_model

            torch.manual_seed(0)
            net, _ = load_torch_model(self.arch)
            path = Path(self._dir.name) / "trunk.onnx"
            torch.onnx.export(trunk_module(net, self.blocks), torch.zeros(2, self.size, self.size, 3), str(path),
                              input_names=["images"], output_names=["act"],
                              dynamic_axes={"images": {0: "n"}, "act": {0: "n"}}, opset_version=17, dynamo=False)
            self._session = ort.InferenceSession(str(path), session_options(default_threads()),
                                                 providers=["CPUExecutionProvider"])
        return self._session
