"""Frame-level training samples from a pseudo-label file, with deterministic augmentation.

Every random choice of a sample (scale, crop, flip) comes from ``numpy.random.default_rng([seed, epoch,
index])``, so the data a step sees depends only on (seed, step): resuming replays it exactly, with any
number of loader workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from uvis.data import masks as mask_utils
from uvis.data import ytvis
from uvis.data.masks import RLE
from uvis.data.video import read_image
from uvis.errors import UserError
from uvis.model.model import PIXEL_MEAN
from uvis.pseudo.format import FrameInstance, PseudoLabels


def pseudo_labels_from_dataset(dataset: ytvis.Dataset, *, keep_categories: bool = True) -> PseudoLabels:
    """Ground truth as frame-level pseudo-labels (one instance per track per frame where it is visible).

    For tests and upper-bound experiments: training on it is training on perfect pseudo-labels.
    ``keep_categories=False`` gives a class-agnostic file, as stage 1 writes before naming.
    """
    instances = []
    for track in dataset.tracks:
        for t, seg in enumerate(track.segmentations):
            if seg is None or mask_utils.area(seg) == 0:
                continue
            instances.append(FrameInstance(video_id=track.video_id, frame_index=t, segmentation=seg, score=1.0,
                                            category_id=track.category_id if keep_categories else None,
                                            class_prob=1.0 if keep_categories else None))
    return PseudoLabels(videos=list(dataset.videos), instances=instances,
                        categories=list(dataset.categories) if keep_categories else [],
                        info={"source": "ground truth", **dataset.info})


def vocabulary_of(pseudo: PseudoLabels) -> list[tuple[int, str]]:
    """(category id, name) per class index; one class "object" when the file is class-agnostic."""
    if pseudo.categories:
        return [(c.id, c.name) for c in pseudo.categories]
    return [(1, "object")]


def resolve_frame_paths(data: str | Path, pseudo: PseudoLabels) -> dict[int, list[Path]]:
    """video_id -> frame paths, from a frame root or anything ``uvis.data.sources.discover`` accepts."""
    data = Path(data)
    if not pseudo.videos:
        raise UserError("the pseudo-label file lists no videos", fix="run uvis pseudo-label first")
    first = pseudo.videos[0]
    if data.is_dir() and first.file_names and (data / first.file_names[0]).is_file():
        return {v.id: [data / n for n in v.file_names] for v in pseudo.videos}
    from uvis.data.sources import discover

    collection = discover(data)
    by_name = {item.name: item for item in collection.items}
    by_id = {item.video_id: item for item in collection.items}
    out: dict[int, list[Path]] = {}
    for v in pseudo.videos:
        item = by_name.get(v.name) if v.name else None
        item = item or by_id.get(v.id)
        if item is None:
            raise UserError(f"video {v.name or v.id} of the pseudo-label file is not in the data", path=data,
                            fix="pass the data the pseudo-labels were made from (data=PATH)")
        if item.file_names is not None:
            paths = [item.path / n for n in item.file_names]
        elif item.path.is_dir():
            paths = [item.path / n for n in item.open().frame_names]
        else:
            raise UserError(f"video {item.name} is a video file; training reads frames from disk", path=item.path,
                            fix="extract its frames into a folder (ffmpeg -i VIDEO DIR/%05d.jpg) and pass that")
        if len(paths) != v.length:
            raise UserError(f"video {item.name} has {len(paths)} frames but the pseudo-labels {v.length}", path=data,
                            fix="pass the data the pseudo-labels were made from (data=PATH)")
        out[v.id] = paths
    return out


@dataclass
class FrameSample:
    path: Path
    segmentations: list[RLE]
    labels: list[int]
    clip: np.ndarray | None = None  # [N, C] CLIP image embeddings of the instances (zero row = none)


class FrameDataset(torch.utils.data.Dataset):
    """Frames with their pseudo-masks. Indexed by ``(index, epoch)`` so augmentation is reproducible."""

    def __init__(self, samples: list[FrameSample], image_size: tuple[int, int], *,
                 scale_range: tuple[float, float] = (1.0, 1.0), hflip: bool = False, min_area: int = 1,
                 copy_paste_prob: float = 0.0, seed: int = 0):
        self.samples = samples
        self.image_size = tuple(image_size)
        self.scale_range = scale_range
        self.hflip = hflip
        self.min_area = min_area
        self.copy_paste_prob = copy_paste_prob
        self.seed = seed
        self.dropped = 0  # instances left out (class-aware file, no category)
        # width of the per-instance CLIP embeddings carried as ``clip`` targets (0 = none)
        self.clip_dim = next((s.clip.shape[1] for s in samples if s.clip is not None), 0)

    @staticmethod
    def from_pseudo(pseudo: PseudoLabels, frame_paths: dict[int, list[Path]], *, min_score: float = 0.0,
                    skip_empty_frames: bool = True, embeddings: dict[int, np.ndarray] | None = None,
                    **kw) -> FrameDataset:
        """One sample per frame. Class-aware files drop instances without a category (counted in ``dropped``).

        ``embeddings`` (instance id -> CLIP embedding, see ``uvis.pseudo.name_labels.load_embeddings``) makes
        every sample carry a ``clip`` target row per instance; instances without one get a zero row (ignored
        by the distillation loss).
        """
        dim = len(next(iter(embeddings.values()))) if embeddings else 0
        index = {c.id: i for i, c in enumerate(pseudo.categories)}
        by_frame = pseudo.by_frame()
        samples, dropped = [], 0
        for v in pseudo.videos:
            for t, path in enumerate(frame_paths[v.id]):
                segs, labels, clip = [], [], []
                for inst in by_frame.get((v.id, t), []):
                    if inst.score < min_score:
                        continue
                    if index:
                        if inst.category_id not in index:
                            dropped += 1
                            continue
                        labels.append(index[inst.category_id])
                    else:
                        labels.append(0)
                    segs.append(inst.segmentation)
                    if dim:
                        clip.append(embeddings.get(inst.id, np.zeros(dim, np.float32)))
                if segs or not skip_empty_frames:
                    rows = (np.stack(clip) if clip else np.zeros((0, dim), np.float32)) if dim else None
                    samples.append(FrameSample(path, segs, labels, rows))
        if not samples:
            raise UserError("no frame has a pseudo-label to train on", fix="check the pseudo-label file and min_score=")
        ds = FrameDataset(samples, **kw)
        ds.dropped = dropped
        return ds

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, epoch = key
        rng = np.random.default_rng([self.seed, epoch, index])
        image, masks, labels, clip = self._augmented(index, rng)
        if self.copy_paste_prob > 0 and len(self) > 1 and rng.random() < self.copy_paste_prob:
            other = int(rng.integers(0, len(self) - 1))
            other += other >= index  # another frame
            image, masks, labels, clip = self._paste(image, masks, labels, clip, *self._augmented(other, rng), rng)
        keep = masks.flatten(1).sum(1) >= self.min_area
        out = {"image": image.contiguous(), "masks": masks[keep].contiguous(), "labels": labels[keep]}
        if self.clip_dim:
            out["clip"] = clip[keep].contiguous()
        return out

    def _augmented(self, index: int, rng: np.random.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Load a frame and its masks; random scale, crop (or pad) to ``image_size``, horizontal flip.

        Returns (image, masks, labels, CLIP rows [N, clip_dim]); geometry never changes what an instance is,
        so labels and CLIP rows follow their masks unchanged.
        """
        s = self.samples[index]
        image = torch.from_numpy(np.array(read_image(s.path))).permute(2, 0, 1).float().div(255.0)
        h, w = image.shape[-2:]
        if s.segmentations:
            masks = torch.from_numpy(np.stack([mask_utils.decode(r) for r in s.segmentations]))
        else:
            masks = torch.zeros(0, h, w, dtype=torch.bool)
        if masks.shape[-2:] != (h, w):
            raise UserError(f"masks are {tuple(masks.shape[-2:])} but the frame is {(h, w)}", path=s.path,
                            fix="pass the frames the pseudo-labels were made from")
        th, tw = self.image_size
        scale = min(th / h, tw / w) * rng.uniform(*self.scale_range)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        image = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
        masks = F.interpolate(masks[None].float(), size=(nh, nw), mode="nearest")[0] > 0.5
        y0 = int(rng.integers(0, nh - th + 1)) if nh > th else 0
        x0 = int(rng.integers(0, nw - tw + 1)) if nw > tw else 0
        image, masks = image[:, y0 : y0 + th, x0 : x0 + tw], masks[:, y0 : y0 + th, x0 : x0 + tw]
        if image.shape[1:] != (th, tw):
            # Pad with the mean colour (0 once normalised), as the model pads at inference, so padding looks the
            # same in training and in use.
            canvas = torch.tensor(PIXEL_MEAN, dtype=image.dtype).view(3, 1, 1).expand(3, th, tw).clone()
            canvas[:, : image.shape[1], : image.shape[2]] = image
            image = canvas
            masks = F.pad(masks, (0, tw - masks.shape[2], 0, th - masks.shape[1]))
        if self.hflip and rng.random() < 0.5:
            image, masks = image.flip(-1), masks.flip(-1)
        clip = torch.from_numpy(s.clip).float() if s.clip is not None else torch.zeros(len(s.labels), self.clip_dim)
        return image, masks, torch.tensor(s.labels, dtype=torch.long), clip

    @staticmethod
    def _paste(image, masks, labels, clip, src_image, src_masks, src_labels, src_clip, rng: np.random.Generator):
        """Copy-paste: a random non-empty subset of another frame's instances is pasted on top of this frame.

        Pasted pixels are removed from the masks they cover, so the targets stay a valid (non-overlapping
        where the source was) instance layout; wholly covered instances are dropped by the ``min_area`` filter.
        """
        if len(src_masks) == 0:
            return image, masks, labels, clip
        chosen = rng.random(len(src_masks)) < 0.5
        if not chosen.any():
            chosen[int(rng.integers(0, len(src_masks)))] = True
        pick = torch.from_numpy(chosen)
        pasted = src_masks[pick]
        union = pasted.any(0)
        image = torch.where(union[None], src_image, image)
        masks = masks & ~union[None]
        return image, torch.cat([masks, pasted]), torch.cat([labels, src_labels[pick]]), torch.cat([clip, src_clip[pick]])


def collate(batch: list[dict]) -> tuple[torch.Tensor, list[dict]]:
    return torch.stack([b["image"] for b in batch]), [{k: v for k, v in b.items() if k != "image"} for b in batch]


class StepBatchSampler:
    """Yields the keys of this rank's batch for steps ``start_step, start_step + 1, ...`` (forever).

    Epoch e visits the samples in ``default_rng([seed, e]).permutation``; each step takes
    ``batch_size * world_size`` consecutive entries and rank r its own slice, so ranks see disjoint data
    and the order is a pure function of (seed, step): the data order needs no state of its own to resume.
    """

    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start_step: int = 0):
        self.n, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self.per_step = batch_size * world_size
        self.steps_per_epoch = max(1, num_samples // self.per_step)

    def batch(self, step: int) -> list[tuple[int, int]]:
        epoch, k = divmod(step, self.steps_per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        if self.n < self.per_step:
            perm = np.resize(perm, self.per_step)  # tiny datasets: repeat frames to fill the batch
        block = perm[k * self.per_step : (k + 1) * self.per_step]
        mine = block[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return [(int(i), epoch) for i in mine]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1

    def state(self) -> dict:
        return {"seed": self.seed, "num_samples": self.n, "batch_size": self.batch_size,
                "world_size": self.world_size, "steps_per_epoch": self.steps_per_epoch}
