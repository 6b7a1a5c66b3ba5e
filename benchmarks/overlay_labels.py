"""Label placement of uvis's overlays, measured against supervision's, and the README's overlay pictures.

1. Crowded synthetic frames (854x480, 14 overlapping discs and one large mask, labels like "7 skateboard 0.83"):
   for uvis (``uvis.data.overlay.place_labels``) and for supervision's ``LabelAnnotator(smart_position=True)``
   (its boxes from the same masks, text at the same height), counts pairs of label boxes that overlap, labels
   left outside the frame, and how far each label is from its mask.
2. ``docs/overlay_crowded.png``: one such frame drawn by uvis.
3. ``docs/contact_sheet_davis.png``: real DAVIS-2016 video. The ground-truth masks are split into connected
   parts (so a frame holds several objects) and linked into tracks by uvis's IoU baseline. Each frame is drawn
   at contact-sheet size, the way ``uvis run``'s report draws it.

    PYTHONPATH=src python benchmarks/overlay_labels.py --shared ../shared --frames 50
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
from PIL import Image

from uvis.data import masks as mask_utils
from uvis.data.overlay import draw_overlay, label_font, label_sizes, place_labels

REPO = Path(__file__).resolve().parents[1]
NAMES = ["person", "dog", "skateboard", "car", "horse", "bicycle", "cat", "bird", "motorbike", "truck", "sheep",
         "cow", "boat", "ball"]


def crowded_frame(seed: int, h: int = 480, w: int = 854) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    # a smooth, street-like background: sky above, ground below (noise would only bloat the PNG)
    frame = np.stack([110 + 60 * yy / h, 120 + 40 * xx / w, np.full((h, w), 140.0)], -1).astype(np.uint8)
    masks, labels = [], []
    road = np.zeros((h, w), bool)
    road[int(h * 0.55):, :] = True
    masks.append(road)
    labels.append(f"{len(NAMES) + 1} road {rng.random():.2f}")
    for k, name in enumerate(NAMES):
        cx, cy, r = rng.integers(60, w - 60), rng.integers(40, h - 40), rng.integers(18, 70)
        masks.append((xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2)
        labels.append(f"{k + 1} {name} {rng.random():.2f}")
    return frame, masks, labels


def _overlap_pairs(boxes: list[tuple[float, float, float, float]]) -> int:
    n = 0
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            n += not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])
    return n


def _distance(box: tuple[float, float, float, float], mask: np.ndarray) -> float:
    """Pixels from the box to the nearest mask pixel (0 when they touch)."""
    ys, xs = np.nonzero(mask)
    dx = np.maximum(0, np.maximum(box[0] - xs, xs - box[2]))
    dy = np.maximum(0, np.maximum(box[1] - ys, ys - box[3]))
    return float(np.sqrt(dx * dx + dy * dy).min())


def uvis_boxes(masks: list[np.ndarray], labels: list[str], h: int, w: int) -> list:
    sizes = label_sizes(labels, h)
    order = list(reversed(range(len(masks))))  # as draw_overlay: the mask drawn last gets its label placed first
    placed = place_labels([masks[i] for i in order], [sizes[i] for i in order], h, w)
    boxes: list = [None] * len(masks)
    for i, b in zip(order, placed, strict=True):
        boxes[i] = b
    return boxes


def supervision_boxes(masks: list[np.ndarray], labels: list[str], h: int, w: int) -> list:
    """The label boxes supervision's LabelAnnotator(smart_position=True) draws, at the same text height as uvis."""
    import supervision as sv

    det = sv.Detections(xyxy=np.array([_xyxy(m) for m in masks], np.float32), mask=np.stack(masks),
                        class_id=np.arange(len(masks)), tracker_id=np.arange(1, len(masks) + 1))
    annotator = sv.LabelAnnotator(text_scale=label_font(h).size / 22, text_padding=2, smart_position=True,
                                  color_lookup=sv.ColorLookup.TRACK)
    # the two steps of LabelAnnotator.annotate that place the boxes (private: this measurement only)
    props = annotator._get_label_properties(det, labels)
    props = annotator._adjust_labels_in_frame((w, h), labels, props)
    return [tuple(float(v) for v in b) for b in props[:, :4]]


def _xyxy(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def measure(frames: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, boxes_of in (("uvis", uvis_boxes), ("supervision", supervision_boxes)):
        pairs = outside = missing = 0
        dist: list[float] = []
        for seed in range(frames):
            frame, masks, labels = crowded_frame(seed)
            h, w = frame.shape[:2]
            try:
                boxes = boxes_of(masks, labels, h, w)
            except ImportError:
                break
            got = [b for b in boxes if b is not None]
            missing += len(boxes) - len(got)
            pairs += _overlap_pairs(got)
            outside += sum(b[0] < 0 or b[1] < 0 or b[2] > w or b[3] > h for b in got)
            dist += [_distance(b, m) for b, m in zip(boxes, masks, strict=True) if b is not None]
        else:
            out[name] = {"labels": frames * (len(NAMES) + 1), "overlapping pairs": pairs, "outside frame": outside,
                         "not drawn": missing, "median px to mask": float(np.median(dist)),
                         "90th pct px to mask": float(np.percentile(dist, 90))}
    return out


def davis_sheet(shared: Path, names: list[str], width: int) -> np.ndarray:
    from scipy.ndimage import label as components

    from uvis.data.davis import load_davis
    from uvis.data.sources import discover
    from uvis.data.vocabulary import Vocabulary
    from uvis.pseudo.format import FrameInstance, PseudoLabels
    from uvis.report import OverlayRow, _row_sheet
    from uvis.track.iou_baseline import IoULinkConfig, link_by_iou
    from uvis.track.segmenter import VideoResult
    from uvis.track.video_tracks import VideoTrack

    root = shared / "data" / "davis2016"
    gt = load_davis(root, sequences=names)
    instances = []
    for tr in gt.tracks:
        for t, seg in enumerate(tr.segmentations):
            if seg is None:
                continue
            parts, n = components(mask_utils.decode(seg))
            for k in range(1, n + 1):
                part = parts == k
                if part.sum() > 0.002 * part.size:
                    instances.append(FrameInstance(video_id=tr.video_id, frame_index=t, score=1.0, category_id=1,
                                                   segmentation=mask_utils.encode(part)))
    tracks = link_by_iou(PseudoLabels(videos=gt.videos, instances=instances, categories=gt.categories),
                         IoULinkConfig(iou_threshold=0.3))
    rows = []
    items = {i.name: i for i in discover(root).items}
    for video in gt.videos:
        mine = [VideoTrack(track_id=k, category_id=1, class_name="object", score=1.0, segmentations=tr.segmentations,
                           num_frames_seen=sum(s is not None for s in tr.segmentations))
                for k, tr in enumerate(sorted((t for t in tracks if t.video_id == video.id),
                                              key=lambda t: -sum(s is not None for s in t.segmentations)), 1)]
        result = VideoResult(video=items[video.name].open(), tracks=mine[:8], vocabulary=Vocabulary.from_names(["object"]))
        n = result.num_frames
        wanted = [0, n // 2, n - 1]
        row = OverlayRow(video=video.name, frames=[], frame_indices=wanted)
        for t, frame in enumerate(result.video):
            if t in wanted:
                row.frames.append(result.draw_frame(t, frame, width=width))
        rows.append(row)
    return _row_sheet(rows, thumb_width=width)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--frames", type=int, default=50, help="crowded frames measured")
    ap.add_argument("--sequences", default="motocross-jump,bmx-trees,horsejump-high,dog")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for name, stats in measure(args.frames).items():
        print(f"{name:12s} " + ", ".join(f"{k} {v:g}" for k, v in stats.items()))
    frame, masks, labels = crowded_frame(0)
    ids = [len(NAMES) + 1] + list(range(1, len(NAMES) + 1))
    Image.fromarray(draw_overlay(frame, np.stack(masks), ids, labels)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT).save(REPO / "docs" / "overlay_crowded.png", optimize=True)
    sheet = davis_sheet(args.shared, [s.strip() for s in args.sequences.split(",")], 400)
    Image.fromarray(sheet).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
        REPO / "docs" / "contact_sheet_davis.png", optimize=True)
    print("wrote docs/overlay_crowded.png, docs/contact_sheet_davis.png")


if __name__ == "__main__":
    main()
