"""Stage 1b: give every class-agnostic pseudo-mask a class with CLIP, then clean the labels with the prototype memory.

Output: the same pseudo-label file with ``categories`` set to the vocabulary, masks the memory
rejected dropped, and on every kept mask

- ``category_id``: the vocabulary id of its (possibly relabelled) class;
- ``class_prob``: CLIP's probability for that class;
- ``score``: ``mask score x class_prob x prototype term``, where the prototype term is the cosine to
  the class prototype clipped to [0, 1], or 1 when the class has no prototype (or the memory is off).
  A mask that is a good object, confidently named and typical of its class ranks first.

``stats["naming"]`` records per-class counts (named / kept / removed / relabelled / relabelled_in).
The unit CLIP image embedding of every kept mask is returned alongside (row i = instance id i + 1),
since the tracker's training-free mode matches objects by these embeddings; ``save_embeddings``
writes them beside the output file.

CLIP work is cached per video (``parts_dir``), so an interrupted run resumes without re-encoding.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from uvis.data import atomic
from uvis.data import masks as mask_utils
from uvis.data.sources import Collection
from uvis.data.video import read_image
from uvis.data.vocabulary import Vocabulary
from uvis.data.ytvis import Video as YtvisVideo
from uvis.distributed import Group
from uvis.errors import UserError
from uvis.pseudo.clip_model import ClipConfig, ClipModel
from uvis.pseudo.format import FrameInstance, PseudoLabels, load_pseudo_labels
from uvis.pseudo.naming import NamingConfig, classify, embed_masks
from uvis.pseudo.prototypes import PrototypeConfig, apply_memory
from uvis.pseudo.vocabulary import TEMPLATE_SETS, class_embeddings

FrameReader = Callable[[int, int], np.ndarray]  # (video_id, frame_index) -> HxWx3 uint8 RGB


@dataclass
class NamedLabels:
    labels: PseudoLabels  # named and filtered; instance ids are 1..K in order
    embeddings: np.ndarray  # KxD float32 unit CLIP image embeddings, row i <-> labels.instances[i]


def _video_frames(source: Collection | FrameReader, video: YtvisVideo,
                  needed: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(frame_index, frame) for the ``needed`` frames (ascending) of one video of the pseudo-labels.

    Frames on disk are the ones the pseudo-label file lists (``file_names``, relative to the dataset's frame
    root, or to the folder holding a frame folder), never a new listing of the folder: a frame added or removed
    since would shift every index. Video files (whose names are only placeholders) are decoded by index.
    """
    video_id, size = video.id, (video.height, video.width)
    if callable(source) and not isinstance(source, Collection):
        for i in needed:
            yield i, source(video_id, i)
        return
    item = next((it for it in source.items if it.video_id == video_id), None)
    if item is None:
        raise UserError(f"video {video_id} of the pseudo-labels is not in {source.root}", path=source.root,
                        fix="pass the same data the pseudo-labels were made from (data=PATH)")
    if item.path.is_dir():
        base = item.path if item.file_names is not None else item.path.parent
        for i in needed:
            if i >= len(video.file_names):
                raise UserError(f"video {item.name} of the pseudo-labels has no frame {i}", path=item.path,
                                fix="regenerate the pseudo-labels")
            path = base / video.file_names[i]
            if not path.is_file():
                raise UserError(f"frame {video.file_names[i]} of video {item.name}, listed in the pseudo-labels, "
                                f"is missing under {base}", path=path,
                                fix="pass the same data the pseudo-labels were made from (data=PATH)")
            frame = read_image(path)
            if frame.shape[:2] != size:
                raise UserError(f"frame {video.file_names[i]} is {frame.shape[1]}x{frame.shape[0]} but its "
                                f"pseudo-labels are {size[1]}x{size[0]}", path=path,
                                fix="pass the same data the pseudo-labels were made from (data=PATH)")
            yield i, frame
        return
    opened = item.open()
    if opened.size != size:
        raise UserError(f"video {item.name} is {opened.width}x{opened.height} but its pseudo-labels are "
                        f"{size[1]}x{size[0]}", path=item.path, fix="pass the same data the pseudo-labels were made from (data=PATH)")
    wanted = set(needed)
    for i, frame in enumerate(opened):
        if i in wanted:
            yield i, frame
            wanted.discard(i)
            if not wanted:
                return
    if wanted:
        raise UserError(f"video {item.name} ended before frame {min(wanted)}", path=item.path,
                        fix="pass the same data the pseudo-labels were made from (data=PATH)")


def _crop_key(clip: ClipModel, cfg: NamingConfig) -> dict:
    return {"clip": clip.identity(), "context": cfg.context, "background": cfg.background,
            "blur_sigma": cfg.blur_sigma}


def _embed_video(pseudo: PseudoLabels, video_id: int, positions: list[int], source: Collection | FrameReader,
                 clip: ClipModel, cfg: NamingConfig, parts_dir: Path | None, crop_key: dict) -> np.ndarray:
    video = next(v for v in pseudo.videos if v.id == video_id)
    insts = [pseudo.instances[p] for p in positions]
    part = None
    if parts_dir is not None:
        h = hashlib.sha256(json.dumps(crop_key, sort_keys=True).encode())
        for inst in insts:
            h.update(f"{inst.frame_index}:{inst.segmentation['counts']};".encode())
        part = parts_dir / f"video-{video_id}-{h.hexdigest()[:16]}.npy"
        if part.is_file():
            try:
                cached = np.load(part)
                if cached.ndim == 2 and cached.shape[0] == len(insts) and np.isfinite(cached).all():
                    return cached
            except (OSError, ValueError):  # damaged part: recompute
                pass
    by_frame: dict[int, list[FrameInstance]] = {}
    for inst in insts:
        by_frame.setdefault(inst.frame_index, []).append(inst)

    def frames() -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        for i, frame in _video_frames(source, video, sorted(by_frame)):
            yield frame, [mask_utils.decode(inst.segmentation) for inst in by_frame[i]]

    chunks = list(embed_masks(clip, frames(), cfg))
    emb = torch.cat(chunks).numpy() if chunks else np.zeros((0, clip.embed_dim), np.float32)
    if part is not None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, emb)

        atomic.write_with(part, write)
    return emb


def name_and_embed(
    pseudo: PseudoLabels,
    source: Collection | FrameReader,
    clip: ClipModel,
    vocabulary: Vocabulary,
    naming_cfg: NamingConfig | None = None,
    proto_cfg: PrototypeConfig | None = None,
    *,
    parts_dir: str | Path | None = None,
    progress: bool = False,
    group: Group | None = None,
) -> NamedLabels:
    """Name, filter and score every mask of ``pseudo``; also return the kept masks' CLIP embeddings.

    Under torchrun (``group``, with ``parts_dir``) each process first embeds its share of the videos (balanced
    by mask count) into ``parts_dir``; then every process names the whole file from those parts, exactly as
    one process would.
    """
    naming_cfg = naming_cfg or NamingConfig()
    proto_cfg = proto_cfg or PrototypeConfig()
    if naming_cfg.templates not in TEMPLATE_SETS:
        raise UserError(f"unknown template set '{naming_cfg.templates}'", fix=f"use one of {', '.join(TEMPLATE_SETS)}")
    text = class_embeddings(clip, vocabulary, TEMPLATE_SETS[naming_cfg.templates], cache_dir=naming_cfg.text_cache_dir)
    parts = Path(parts_dir) if parts_dir is not None else None

    # Processing order: video by video (file order), frame by frame; instances keep file order inside a frame.
    frame_rank = {v.id: r for r, v in enumerate(pseudo.videos)}
    order = sorted(range(len(pseudo.instances)),
                   key=lambda p: (frame_rank[pseudo.instances[p].video_id], pseudo.instances[p].frame_index, p))
    crop_key = _crop_key(clip, naming_cfg)
    emb_rows: list[np.ndarray] = []
    by_video: dict[int, list[int]] = {}
    for p in order:
        by_video.setdefault(pseudo.instances[p].video_id, []).append(p)
    group = group if group is not None and parts is not None else Group.solo()
    videos = [v for v in pseudo.videos if by_video.get(v.id)]
    mine = [videos[i] for i in group.share([len(by_video[v.id]) for v in videos])]
    with group.progress(total=len(order), desc="naming", unit="mask", disable=not progress) as bar:
        for video in mine:
            with group.task(f"video {video.name or video.id}"):
                emb = _embed_video(pseudo, video.id, by_video[video.id], source, clip, naming_cfg, parts, crop_key)
            if not group.enabled:
                emb_rows.append(emb)
            bar.update(len(by_video[video.id]))
    if group.enabled:  # every video's embeddings are in the parts now
        emb_rows = [_embed_video(pseudo, v.id, by_video[v.id], source, clip, naming_cfg, parts, crop_key)
                    for v in videos]
    emb = np.concatenate(emb_rows) if emb_rows else np.zeros((0, clip.embed_dim), np.float32)

    probs = classify(torch.from_numpy(emb), text, clip.logit_scale).numpy() if len(emb) else \
        np.zeros((0, len(vocabulary)), np.float32)
    labels = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    frames: dict[tuple[int, int], list[int]] = {}
    for row, p in enumerate(order):
        inst = pseudo.instances[p]
        frames.setdefault((inst.video_id, inst.frame_index), []).append(row)
    result = apply_memory(labels, probs, emb, proto_cfg, frames=list(frames.values()))

    kept_rows = sorted((p, row) for row, p in enumerate(order) if result.keep[row])  # back to file order
    instances, rows = [], []
    for new_id, (p, row) in enumerate(kept_rows, start=1):
        sim = float(result.similarity[row])
        term = 1.0 if np.isnan(sim) else min(max(sim, 0.0), 1.0)
        old = pseudo.instances[p]
        instances.append(replace(old, id=new_id, category_id=vocabulary.ids[int(result.labels[row])],
                                 class_prob=float(result.probs[row]),
                                 score=float(old.score) * float(result.probs[row]) * term))
        rows.append(row)

    per_class = {vocabulary.names[c]: counts for c, counts in result.counts.items()}
    totals = {k: sum(c[k] for c in result.counts.values()) for k in ("named", "kept", "removed", "relabelled")}
    settings = {"clip_model": clip.name, "clip_pretrained": clip.pretrained_tag, "logit_scale": clip.logit_scale,
                "clip_weights": str(clip.weights_path) if clip.weights_path else None,
                "naming": asdict(naming_cfg), "prototypes": asdict(proto_cfg),
                "score": "mask score x class_prob x clip(cosine to class prototype, 0, 1) (1 without prototype)"}
    stats = dict(pseudo.stats)
    stats["naming"] = {"masks_in": len(pseudo.instances), "masks_out": len(instances), **totals,
                       "per_class": per_class,
                       "memory_sizes": {vocabulary.names[c]: s for c, s in result.memory_sizes.items()}}
    info = dict(pseudo.info)
    info["naming"] = settings
    named = PseudoLabels(videos=list(pseudo.videos), instances=instances, categories=vocabulary.categories(),
                         info=info, stats=stats)
    out_emb = emb[rows] if rows else np.zeros((0, emb.shape[1] if emb.ndim == 2 else clip.embed_dim), np.float32)
    return NamedLabels(named, out_emb.astype(np.float32))


def name_pseudo_labels(
    pseudo: PseudoLabels,
    source: Collection | FrameReader,
    clip: ClipModel,
    vocabulary: Vocabulary,
    naming_cfg: NamingConfig | None = None,
    proto_cfg: PrototypeConfig | None = None,
) -> PseudoLabels:
    """Named pseudo-labels only (see ``name_and_embed`` for the embeddings too)."""
    return name_and_embed(pseudo, source, clip, vocabulary, naming_cfg, proto_cfg).labels


def name_file(
    pseudo: PseudoLabels | str | Path,
    source: Collection | FrameReader,
    out_path: str | Path,
    vocabulary: Vocabulary,
    clip_config: ClipConfig,
    naming_cfg: NamingConfig | None = None,
    proto_cfg: PrototypeConfig | None = None,
    *,
    parts_dir: str | Path | None = None,
    embeddings: bool = True,
    progress: bool = False,
    group: Group | None = None,
) -> NamedLabels:
    """Stage 1b from file to file: load CLIP, name ``pseudo`` and write ``out_path`` (+ its embeddings).

    CLIP image embeddings are cached per video in ``parts_dir`` (default: ``OUT.parts`` beside ``out_path``),
    so rerunning after an interruption, or with other naming or prototype settings, skips the encoding.
    Under torchrun (``group``) the processes share the encoding and rank 0 writes the outputs.
    """
    out_path = Path(out_path)
    if not isinstance(pseudo, PseudoLabels):
        pseudo = load_pseudo_labels(pseudo)
    parts = Path(parts_dir) if parts_dir is not None else out_path.with_name(out_path.stem + ".parts")
    group = group or Group.solo()
    group.check_shared(out_path.parent)
    if group.enabled:
        clip_config = replace(clip_config, device=group.device(clip_config.device))
    clip = ClipModel.load(clip_config)
    named = name_and_embed(pseudo, source, clip, vocabulary, naming_cfg, proto_cfg, parts_dir=parts,
                           progress=progress, group=group)
    if group.is_main:
        named.labels.save(out_path)
        if embeddings:
            save_embeddings(embeddings_path(out_path), named)
    group.barrier()  # the outputs exist for every process
    return named


def naming_summary(out_path: str | Path, named: NamedLabels, vocabulary: Vocabulary) -> str:
    """One line on what naming kept, for the command line."""
    s = named.labels.stats["naming"]
    return (f"wrote {out_path}: {s['masks_out']} of {s['masks_in']} masks kept ({s['removed']} removed, "
            f"{s['relabelled']} relabelled) over {len(vocabulary)} classes")


def embeddings_path(labels_path: str | Path) -> Path:
    """Where the embeddings of ``labels_path`` live: ``NAME.json`` -> ``NAME.embeddings.npz``."""
    p = Path(labels_path)
    return p.with_name(p.stem + ".embeddings.npz")


def save_embeddings(path: str | Path, named: NamedLabels) -> None:
    """Write ``ids`` (instance ids) and ``embeddings`` (float16 unit vectors) to an .npz, atomically."""
    ids = np.array([inst.id for inst in named.labels.instances], dtype=np.int64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, ids=ids, embeddings=named.embeddings.astype(np.float16))

    atomic.write_with(path, write)


def load_embeddings(path: str | Path) -> dict[int, np.ndarray]:
    """Instance id -> float32 unit CLIP embedding, as written by ``save_embeddings``."""
    path = Path(path)
    try:
        with np.load(path) as data:
            ids, emb = data["ids"], data["embeddings"].astype(np.float32)
        if ids.ndim != 1 or emb.ndim != 2 or len(ids) != len(emb):
            raise ValueError("ids and embeddings differ in length")
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:  # damaged or truncated copies
        raise UserError(f"cannot read CLIP embeddings ({type(e).__name__})", path=path,
                        fix="rerun `uvis name` to write them") from None
    return {int(i): e for i, e in zip(ids, emb, strict=True)}
