"""A results folder as COCO instance annotations, one image per frame, for image tools.

Writes ``OUT/annotations.json`` (COCO: ``images``, ``annotations`` with RLE ``segmentation``, ``bbox``,
``area``, ``score`` and ``track_id``, ``categories``) and, unless told not to, every frame as
``OUT/images/<video>/<frame>.jpg`` (the ``file_name`` of its image entry). Images also name their ``video``
and ``frame_index``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from uvis.data import atomic
from uvis.data import masks as mask_utils
from uvis.data.progress import progress
from uvis.data.sources import VideoItem
from uvis.track.collection import safe_name
from uvis.track.segmenter import VideoResult


def export_coco(results: list[tuple[VideoItem, VideoResult]], out: str | Path, *, write_images: bool = True,
                show_progress: bool = True) -> Path:
    """Write the COCO export of ``results`` (from ``uvis.track.collection.load_output_folder``); returns the JSON."""
    out = Path(out)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    categories: dict[int, str] = {}
    total = sum(r.num_frames for _, r in results)
    with progress(total, "coco export", "frame", enabled=show_progress) as bar:
        for item, result in results:
            name = safe_name(item.name)
            stems = result.frame_stems()
            frames = iter(result.video) if write_images else None
            for t in range(result.num_frames):
                image_id = len(images) + 1
                file_name = f"{name}/{stems[t]}.jpg"
                if frames is not None:
                    frame = next(frames)
                    atomic.write_with(out / "images" / file_name,
                                      lambda p, f=frame: Image.fromarray(f).save(p, format="JPEG", quality=95))
                images.append({"id": image_id, "file_name": file_name, "width": result.video.width,
                               "height": result.video.height, "video": item.name, "frame_index": t})
                for track in result.tracks:
                    rle = track.segmentations[t]
                    if rle is None:
                        continue
                    categories.setdefault(track.category_id, track.class_name)
                    annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                        "category_id": track.category_id, "segmentation": rle,
                                        "area": float(mask_utils.area(rle)), "bbox": mask_utils.bbox(rle),
                                        "iscrowd": 0, "score": float(track.score), "track_id": track.track_id})
                bar.update(1)
    path = out / "annotations.json"
    atomic.write_json(path, {
        "info": {"description": "uvis tracks, one COCO image per frame"},
        "images": images, "annotations": annotations,
        "categories": [{"id": cid, "name": n} for cid, n in sorted(categories.items())],
    })
    return path
