"""uvis tracks as Roboflow ``supervision`` detections, one ``sv.Detections`` per frame, and back.

Each detection carries its mask, box (from the mask), ``tracker_id`` (the uvis track id, the value in the id
PNGs), ``class_id`` (the category id), ``confidence`` (the track's score) and ``data["class_name"]``; the
``metadata`` names the video, the frame and the frame rate. So supervision's annotators (``MaskAnnotator``,
``LabelAnnotator`` with ``ColorLookup.TRACK``), ``VideoSink`` and trackers' tools take uvis results directly::

    for frame, detections in frames_with_detections(result):
        frame = sv.MaskAnnotator(color_lookup=sv.ColorLookup.TRACK).annotate(frame.copy(), detections)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from uvis.data import masks as mask_utils
from uvis.export import require
from uvis.track.segmenter import VideoResult
from uvis.track.video_tracks import VideoTrack


def _boxes(masks: np.ndarray) -> np.ndarray:
    """xyxy boxes (pixel edges: x1, y1 exclusive) of boolean masks; (0, 0, 0, 0) for an empty one."""
    out = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if len(rows):
            out[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return out


def to_detections(result: VideoResult, t: int) -> Any:
    """The tracks present in frame ``t`` as one ``sv.Detections`` (best track first)."""
    sv = require("supervision")
    present = [tr for tr in result.tracks if tr.segmentations[t] is not None]
    h, w = result.video.height, result.video.width
    masks = np.stack([mask_utils.decode(tr.segmentations[t]) for tr in present]) if present else \
        np.zeros((0, h, w), bool)
    detections = sv.Detections(
        xyxy=_boxes(masks),
        mask=masks,
        confidence=np.array([tr.score for tr in present], np.float32),
        class_id=np.array([tr.category_id for tr in present], int),
        tracker_id=np.array([tr.track_id for tr in present], int),
        data={"class_name": np.array([tr.class_name for tr in present], dtype=object)},
        metadata={"video": result.video.name, "frame_index": t,
                  "frame": result.video.frame_names[t] if t < len(result.video.frame_names) else None,
                  "frame_rate": result.video.fps},
    )
    return detections


def frames_with_detections(result: VideoResult) -> Iterator[tuple[np.ndarray, Any]]:
    """Every frame of the video (streamed from its source) with its ``sv.Detections``."""
    for t, frame in enumerate(result.video):
        yield frame, to_detections(result, t)


def tracks_from_detections(detections: Sequence[Any]) -> list[VideoTrack]:
    """Video tracks from one ``sv.Detections`` per frame, grouped by ``tracker_id`` (the inverse of
    ``to_detections``): masks RLE-encoded per frame, class and score from the detections (their mean score)."""
    n = len(detections)
    by_id: dict[int, dict[str, Any]] = {}
    for t, det in enumerate(detections):
        if det.tracker_id is None or det.mask is None:
            raise ValueError(f"frame {t}: detections need tracker_id and mask")
        names = det.data.get("class_name")
        for k in range(len(det)):
            tid = int(det.tracker_id[k])
            entry = by_id.setdefault(tid, {"segs": [None] * n, "scores": [], "class_id": 0, "name": ""})
            entry["segs"][t] = mask_utils.encode(np.asarray(det.mask[k], bool))
            entry["scores"].append(float(det.confidence[k]) if det.confidence is not None else 1.0)
            entry["class_id"] = int(det.class_id[k]) if det.class_id is not None else 0
            entry["name"] = str(names[k]) if names is not None else str(entry["class_id"])
    tracks = [VideoTrack(track_id=tid, category_id=e["class_id"], class_name=e["name"],
                         score=float(np.mean(e["scores"])), segmentations=e["segs"], num_frames_seen=len(e["scores"]))
              for tid, e in by_id.items()]
    return sorted(tracks, key=lambda tr: -tr.score)
