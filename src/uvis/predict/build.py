"""The one way to make a predictor: ``build_predictor`` (``uvis.track.build.build_segmenter`` puts the tracker
around it; the tracker comes after prediction in the pipeline).

``uvis segment``, the pipeline's segment step and the Python API all come here::

    import uvis
    seg = uvis.build_segmenter("runs/x", classes="dog,skateboard")   # a trained run folder
    seg = uvis.build_segmenter("none", features="motion")             # the training-free path, no weights
    for frame in seg.track("clip.mp4"):
        print(frame.index, frame.track_ids, frame.class_names)

``model``: a run folder (``uvis train --out``, or a ``uvis run`` folder, whose ``3-model`` is used), or
``"none"`` for the training-free path (stage-1 masks: MaskCut on DINO keys or MotionCut on motion, named by
CLIP). ``classes``: ``"a,b,c"``, a file with one name per line (a ``str`` naming an existing file, or a
``Path``), a list of names or a ``Vocabulary``. ``weights``: where the pretrained files are, ``{"dino": PATH,
"clip": PATH}`` (each optional: else the usual lookup, ``uvis weights``); a trained model uses ``"clip"`` for
its open-vocabulary ``classes`` when its recorded CLIP file moved.

The training-free path picks, in order, ``classes``, else ``categories`` (an input dataset's, ids kept), else
the starting vocabulary of ``configs/videos.toml`` (and says so). ``features="auto"``: DINO when its weights
are found, else motion (said in one line); with motion and no CLIP weights (nor ``classes``), every object is
``object`` and tracked by its colours.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from uvis.data.vocabulary import STARTING_VOCABULARY, Vocabulary, class_names
from uvis.data.ytvis import Category
from uvis.errors import UserError
from uvis.predict.base import Predictor

if TYPE_CHECKING:
    from uvis.features.weights import Need

Classes = str | Path | Sequence[str] | Vocabulary
WEIGHT_ROLES = ("dino", "clip")
DINO_PARAM = "dino_weights"


def _say(message: str) -> None:
    print(message)


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def stage1_needs(backbone: str, dino_weights: str | Path | None, clip_model: str, clip_pretrained: str,
                 clip_weights: str | Path | None, *, dino: bool, clip: bool) -> list[Need]:
    """The weights files of stage 1 (for ``check_needs``): DINO when MaskCut runs (its path: ``dino_weights``),
    and CLIP when naming."""
    from uvis.features.backbones import backbone_need
    from uvis.pseudo.clip_model import ClipConfig, clip_need

    needs = [backbone_need(backbone, dino_weights, DINO_PARAM, "MaskCut")] if dino else []
    if clip:
        needs.append(clip_need(ClipConfig(model_name=clip_model, pretrained_tag=clip_pretrained, weights=clip_weights),
                               "naming masks"))
    return needs


def _weights(weights: Mapping[str, str | Path | None] | None) -> dict[str, str | Path | None]:
    given = dict(weights or {})
    unknown = sorted(set(given) - set(WEIGHT_ROLES))
    if unknown:
        raise UserError(f"unknown weights role(s) {', '.join(unknown)}", fix=f"use {' and '.join(WEIGHT_ROLES)}")
    return {role: given.get(role) for role in WEIGHT_ROLES}


def build_predictor(
    model: str | Path = "none",
    *,
    classes: Classes | None = None,
    categories: Sequence[Category] = (),
    weights: Mapping[str, str | Path | None] | None = None,
    features: str = "auto",
    motion_weight: float = 0.5,
    device: str | None = None,
    backbone: str = "dino_vitb8",
    num_masks: int | None = None,
    resolution: int = 480,
    clip_model: str = "ViT-B-32",
    clip_pretrained: str = "openai",
    estimate_frames: int | None = None,
    say: Callable[[str], None] = _say,
    note: Callable[[str], None] = _note,
) -> Predictor:
    """A predictor for ``model`` (see the module docstring), reporting ``classes`` when given.

    Training-free path only: ``features`` (``auto``, ``dino``, ``motion``, ``dino+motion``; ``motion_weight``:
    the motion graph's share with ``dino+motion``), ``backbone``, ``num_masks`` (default
    3 with DINO, 1 with motion), ``resolution`` (MaskCut input size), ``clip_model``/``clip_pretrained``;
    ``estimate_frames``: with DINO on the CPU, note the time it will take for this many frames. ``say``: the
    one-line choices (features, weights-free mode); ``note``: the notes (starting vocabulary, CPU time).
    """
    files = _weights(weights)
    if isinstance(model, str) and model.lower() == "none":
        return _stage1(classes, categories, files, features, motion_weight, device, backbone, num_masks, resolution, clip_model,
                       clip_pretrained, estimate_frames, say, note)
    from uvis.predict.trained import TrainedPredictor

    names = None if classes is None else _names(classes)  # a bad list is reported before the model loads
    run_dir = Path(model)
    if not run_dir.is_dir():
        raise UserError("model run folder not found", path=run_dir,
                        fix="pass the folder written by `uvis train`, or model='none'", param="model")
    if files["dino"] is not None:
        raise UserError("a trained model has no DINO weights to give", fix="drop the DINO weights, or use model='none'",
                        param="dino_weights")
    predictor = TrainedPredictor.from_run(run_dir, device, clip_weights=files["clip"])
    return predictor if names is None else predictor.with_vocabulary(names)


def _names(classes: Classes) -> list[str]:
    return list(classes.names) if isinstance(classes, Vocabulary) else class_names(classes)


def _vocabulary(classes: Classes) -> Vocabulary:
    return classes if isinstance(classes, Vocabulary) else Vocabulary.from_names(class_names(classes))


def choose_features(features: str, backbone: str, dino_weights: str | Path | None,
                    say: Callable[[str], None] = _say) -> str:
    """``auto``: dino when its weights are found (or downloaded), else motion, said in one line."""
    if features not in ("auto", "dino", "motion", "dino+motion"):
        raise UserError(f"unknown stage-1 features '{features}'", fix="use features=auto, dino, motion or dino+motion",
                        param="features")
    if features != "auto":
        return features
    if dino_weights:
        return "dino"  # the user named a DINO file: a bad path is reported, never replaced by motion
    from uvis.errors import WeightsNotFoundError
    from uvis.features.backbones import backbone_need
    from uvis.features.weights import check_needs

    need = backbone_need(backbone, None, DINO_PARAM, "MaskCut")
    try:
        check_needs([need])
    except WeightsNotFoundError:
        say(f"no DINO weights ({need.spec.filename}): using the weights-free motion features "
            f"(--features motion); see the README's weights section to use DINO")
        return "motion"
    return "dino"


def _stage1(classes: Classes | None, categories: Sequence[Category], files: dict[str, str | Path | None],
            features: str, motion_weight: float, device: str | None, backbone: str, num_masks: int | None, resolution: int,
            clip_model: str, clip_pretrained: str, estimate_frames: int | None, say: Callable[[str], None],
            note: Callable[[str], None]) -> Predictor:
    """MaskCut or MotionCut + CLIP; the vocabulary is ``classes``, else ``categories`` (ids kept), else the
    starting vocabulary. With motion features and no CLIP weights (nor classes), the weights-free mode."""
    from uvis.errors import WeightsNotFoundError
    from uvis.features.device import choose_device
    from uvis.features.dino import note_cpu_speed
    from uvis.features.weights import check_needs, provenance
    from uvis.predict.stage1 import OBJECT, Stage1Config, Stage1Predictor
    from uvis.pseudo.clip_model import ClipConfig
    from uvis.pseudo.maskcut import MaskCutConfig
    from uvis.pseudo.motioncut import MotionCutConfig

    vocabulary = None if classes is None else _vocabulary(classes)  # a bad list is reported before any model loads
    features = choose_features(features, backbone, files["dino"], say)
    needs = stage1_needs(backbone, files["dino"], clip_model, clip_pretrained, files["clip"],
                         dino=features != "motion", clip=True)
    dino_file: Path | None = None
    clip_file: Path | None
    if features == "motion":  # CLIP is optional: without classes and without its weights, colours and 'object'
        try:
            clip_file = check_needs(needs)[0]
        except WeightsNotFoundError:
            if vocabulary is not None:
                raise
            clip_file = None
            say("no CLIP weights: every object is named 'object' and tracked by its colours (pass --clip-weights "
                "or --classes to name objects)")
    else:
        dino_file, clip_file = check_needs(needs)
    if clip_file is None:
        vocabulary = OBJECT
    elif vocabulary is None:
        vocabulary = Vocabulary.from_categories(list(categories)) if categories else \
            Vocabulary.from_names(list(STARTING_VOCABULARY))
    cfg = Stage1Config(
        features=features, motion_weight=motion_weight, backbone=backbone, dino_weights=dino_file,  # the files just found: the ones recorded
        maskcut=MaskCutConfig(num_masks=num_masks or 3, resolution=resolution),
        motion=MotionCutConfig(num_masks=num_masks or 1),
        clip=None if clip_file is None else ClipConfig(model_name=clip_model, pretrained_tag=clip_pretrained,
                                                       weights=clip_file),
    )
    # recorded per video: a rerun with other weights is refused instead of mixing results
    fingerprint = {name: provenance(f) for name, f in (("dino", dino_file), ("clip", clip_file)) if f is not None}
    predictor = Stage1Predictor.create(vocabulary, cfg, device, fingerprint=fingerprint)
    # notes once the models are loaded (an error before them stays the command's only line)
    if classes is None and not categories and vocabulary.names == STARTING_VOCABULARY:
        note(f"note: no --classes given: naming objects with the starting vocabulary of configs/videos.toml "
             f"({', '.join(STARTING_VOCABULARY)}); pass --classes \"a,b,c\" for your own")
    if features != "motion" and estimate_frames is not None:  # the motion features run no DINO: nothing to estimate
        note_cpu_speed(choose_device(device), backbone, resolution, estimate_frames)
    return predictor
