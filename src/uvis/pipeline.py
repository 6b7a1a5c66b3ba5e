"""``uvis run``: raw videos → pseudo-labels → named pseudo-labels → trained model → tracks → metrics → report.

Every step writes into its own folder of the run directory and finishes by writing ``step.json`` (the
settings that determine its output). A step whose ``step.json`` matches the current settings is skipped, so
an interrupted run resumes where it stopped; inside a step, the stage's own resume takes over (finished
videos of MaskCut, CLIP naming and segmentation are kept, training continues from its last checkpoint).

Ablations re-run only what they change: a variant shares every step whose settings equal the main run's
and writes the others under ``RUN_DIR/ablations/<variant>/``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uvis.data import atomic
from uvis.data.sources import Collection, discover, unreadable_list
from uvis.distributed import Group
from uvis.errors import UserError
from uvis.features.weights import Need, check_needs, provenance
from uvis.jobs import Change, check_settings
from uvis.report import THUMB_WIDTH
from uvis.train.run_folder import PIPELINE_MODEL_FOLDER, RunFolder

if TYPE_CHECKING:
    from uvis.report import OverlayRow, RunReport

STEPS = ("pseudo-label", "name", "train", "segment", "evaluate", "report")
WEIGHTS_STEP = {"dino": "pseudo-label", "clip": "name", "backbone": "train"}  # the first step each file is used in
STEP_FILE = "step.json"
# Written when a train or segment step starts: their own resume would finish a half-made folder under new
# settings (a checkpoint's config, finished videos), so a rerun must match the settings it was started with.
STARTED_FILE = "step.started.json"
RESUME_CHECKED_STEPS = ("train", "segment")


@dataclass
class RunConfig:
    """Everything ``uvis run`` needs; each field belongs to the first step it influences (see ``STEP_FIELDS``)."""

    data: str
    out: str
    frames: str | None = None
    fps: float | None = None  # frame rate of frame folders (overlays); None: the dataset's own, else 30
    classes: list[str] | None = None  # vocabulary; None: the dataset's categories
    device: str | None = None
    progress: bool = True
    skip_bad_videos: bool = False  # report an unreadable video and go on without it (default: stop on it)
    accept_truncated: bool = False  # video files cut short give the frames that decode (default: an error)
    # stage 1a: MaskCut on DINO keys ("dino"), MotionCut on residual motion ("motion", no weights) or MaskCut on
    # the DINO graph fused with the motion graph ("dino+motion", motion_weight of it motion)
    features: str = "dino"
    motion_weight: float = 0.5
    backbone: str = "dino_vitb8"
    dino_weights: str | None = None
    num_masks: int = 3
    resolution: int = 480
    solver: str = "eigh"
    maskcut_batch_size: int = 16
    # ground truth stands in for stage 1 (demo and upper-bound experiments; never the default)
    pseudo_from_ground_truth: bool = False
    # stage 1b: CLIP naming + prototype memory
    clip_model: str = "ViT-B-32"
    clip_weights: str | None = None
    templates: str = "imagenet80"
    prototypes: bool = True
    # stage 2: training
    train_preset: str = "default"
    train_steps: int | None = None
    train_batch_size: int | None = None
    backbone_weights: str | None = None
    image_size: tuple[int, int] | None = None  # (height, width) of training crops and inference; None: the preset's
    # train on the pseudo-labels of these videos only (by name), e.g. to score held-out videos; None: all videos
    train_videos: list[str] | None = None
    # stage 3: tracking
    track_memory: bool = True
    top_k: int = 10
    segment_batch_size: int = 8
    # side-by-side variants: names from ABLATIONS
    ablations: list[str] = field(default_factory=list)
    # the command line the report shows (``uvis run`` sets it; None: none shown)
    command: str | None = None

    def check(self) -> None:
        """One-line errors for settings no run can use, before its first step (the same rules as the flags')."""
        from uvis.data.validate import AT_LEAST_ONE, Range, finite_number

        for name, value, allowed in (("num_masks", self.num_masks, AT_LEAST_ONE), ("resolution", self.resolution,
                                      Range(16, 8192)), ("maskcut_batch_size", self.maskcut_batch_size, AT_LEAST_ONE),
                                     ("top_k", self.top_k, AT_LEAST_ONE),
                                     ("segment_batch_size", self.segment_batch_size, AT_LEAST_ONE),
                                     ("train_steps", self.train_steps, AT_LEAST_ONE),
                                     ("train_batch_size", self.train_batch_size, AT_LEAST_ONE)):
            if value is not None:
                finite_number(value, name, allowed=allowed)
        size = self.image_size
        if size is not None and not (isinstance(size, (tuple, list)) and len(size) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and 32 <= v <= 8192 for v in size)):
            raise UserError(f"image_size {size!r} is not (height, width) of 32..8192 pixels",
                            fix="pass e.g. image_size=(144, 256)", param="image_size")
        if self.classes is not None:
            from uvis.data.vocabulary import Vocabulary

            Vocabulary.from_names(list(self.classes), source="classes")


# The settings each step's output depends on (cumulative: a step also depends on all earlier ones).
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "pseudo-label": ("data", "frames", "features", "motion_weight", "backbone", "dino_weights", "num_masks",
                     "resolution", "solver", "pseudo_from_ground_truth"),
    "name": ("classes", "clip_model", "clip_weights", "templates", "prototypes"),
    "train": ("train_preset", "train_steps", "train_batch_size", "backbone_weights", "image_size", "train_videos"),
    "segment": ("track_memory", "top_k"),
}

@dataclass(frozen=True)
class Ablation:
    """A variant of the main run: the settings it changes, and what that means (a row of the report)."""

    changes: dict[str, Any]
    description: str

    def apply(self, config: RunConfig) -> RunConfig:
        return dataclasses.replace(config, **self.changes)


ABLATIONS: dict[str, Ablation] = {
    "no-prototypes": Ablation({"prototypes": False}, "CLIP labels kept as they are, no semantic prototype memory"),
    "no-track-memory": Ablation({"track_memory": False}, "tracks matched to the previous frame only, no memory bank "
                                                         "(the MinVIS baseline)"),
    "short-prompts": Ablation({"templates": "short7"}, "7 CLIP prompt templates instead of 80"),
    "single-prompt": Ablation({"templates": "single"}, "one CLIP prompt template instead of 80"),
    **{f"masks-{n}": Ablation({"num_masks": n}, f"{n} MaskCut mask(s) per frame") for n in (1, 2, 4, 5)},
}
BASELINE = "baseline: stage-1 masks + IoU linking"  # the metrics row of the run without a trained model
# What each row of the report's metrics table means (and each mode in its parentheses), so a reader does not
# have to know the pipeline's internals; the ablations' rows say their own descriptions.
ROW_MEANINGS = {
    "uvis": "this run, with the settings of the command above",
    "class-agnostic": "a track counts when its mask matches a ground-truth object, whatever its class",
    "class-aware": "the track must also carry the ground truth's class",
    BASELINE: "no trained model: the per-frame stage-1 masks linked frame to frame by mask IoU",
    **{name: f"ablation: {a.description}" for name, a in ABLATIONS.items()},
}
WEIGHTS_USE = {"dino": "DINO features for MaskCut (stage 1)", "clip": "CLIP naming (stage 1)",
               "backbone": "initialising the model's backbone (stage 2)"}


CONFIG_KEYS = {"name": str, "vocabulary": dict}  # what a vocabulary file may hold (a typo is an error, not ignored)
VOCABULARY_KEYS = {"names"}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A ``configs/*.toml`` file: ``name`` and ``[vocabulary] names``; any other key, or a wrong type, is an error."""
    from uvis.data.vocabulary import Vocabulary

    path = Path(path)
    if not path.is_file():
        raise UserError("config file not found", path=path, fix="pass one of the files in configs/ or your own")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"not valid TOML ({' '.join(str(e).split())})", path=path, fix="check the file's syntax") from None
    except (OSError, RecursionError) as e:
        raise UserError(f"cannot read the config file ({type(e).__name__})", path=path, fix="check the file") from None
    example = 'write it as [vocabulary] names = ["dog", "cat"]'
    for key, value in data.items():
        if key not in CONFIG_KEYS:
            raise UserError(f"unknown key '{key}'", path=path, fix=f"use only {', '.join(CONFIG_KEYS)} ({example})")
        if not isinstance(value, CONFIG_KEYS[key]):
            raise UserError(f"'{key}' is {type(value).__name__}, not a {'table' if key == 'vocabulary' else 'string'}",
                            path=path, fix=example if key == "vocabulary" else 'write it as name = "my-dataset"')
    vocabulary = data.get("vocabulary", {})
    for key in vocabulary:
        if key not in VOCABULARY_KEYS:
            raise UserError(f"unknown key '{key}' in [vocabulary]", path=path, fix=example)
    if "vocabulary" in data:
        names = vocabulary.get("names")
        if not isinstance(names, list):
            raise UserError("[vocabulary] has no list of names", path=path, fix=example)
        vocabulary["names"] = list(Vocabulary.from_names_checked(names, source=path).names)
    return data


def step_settings(config: RunConfig, step: str) -> dict[str, Any]:
    """The settings that determine ``step``'s output (those of all earlier steps included)."""
    keys: list[str] = []
    for name in STEPS:
        keys += STEP_FIELDS.get(name, ())
        if name == step:
            break
    if config.features != "dino+motion":  # only the fusion reads it (and earlier runs' settings stay valid)
        keys = [k for k in keys if k != "motion_weight"]
    return {k: getattr(config, k) for k in keys}


def _stored_settings(marker: Path) -> dict[str, Any] | None:
    """The settings a step's ``step.json`` (or ``step.started.json``) records; None when it is damaged."""
    try:
        settings = json.loads(marker.read_text()).get("settings")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None
    return settings if isinstance(settings, dict) else None


def _is_complete(folder: Path, settings: dict[str, Any]) -> bool:
    marker = folder / STEP_FILE
    if not marker.is_file():
        return False
    return _stored_settings(marker) == json.loads(json.dumps(settings))


def _check_no_conflict(folder: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix outputs of different settings in one folder (the user asked for something else)."""
    marker = folder / STEP_FILE
    started = folder / STARTED_FILE
    if marker.is_file():
        old = _stored_settings(marker)
        if old is None:  # derived data: the step is redone (its own records resume what they can)
            print(f"{marker}: damaged step record; redoing the step", file=sys.stderr)
            marker.unlink()
            return
        check_settings(old, settings, what=f"{folder.name} was made", folder=folder, nested=False,
                       message=lambda changes: _step_conflict(f"{folder.name} was made", changes),
                       fix="pass the settings (and weights) it was made with, use a new output folder (out=FOLDER), or delete "
                           "that step folder to redo it")
    elif started.is_file():
        check_settings(_stored_settings(started) or {}, settings, what=f"{folder.name} was started", folder=folder,
                       nested=False,
                       message=lambda changes: _step_conflict(f"{folder.name} was started", changes, " and not finished"),
                       fix="rerun with the settings it was started with, use a new output folder (out=FOLDER), or delete that "
                           "step folder")


def _step_conflict(what: str, changes: list[Change], tail: str = "") -> str:
    """``3-model was made with other weights (backbone: a.pth sha256 …) and other settings (top_k 10 -> 3)``."""
    weights = next((c for c in changes if c.key == "weights"), None)
    others = "; ".join(str(c) for c in changes if c.key != "weights")
    if weights is None:
        return f"{what} with other settings ({others}){tail}"
    return (f"{what} with other weights ({_weights_change(weights.old, weights.new)})"
            + (f" and other settings ({others})" if others else "") + tail)


def _weights_change(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """Which weights file changed: ``dino: a.pth sha256 1234abcd… -> now b.pth sha256 5678ef01…``."""
    old, new = old or {}, new or {}

    def show(entry: dict[str, str] | None) -> str:
        return f"{entry.get('file')} sha256 {str(entry.get('sha256'))[:12]}…" if entry else "none recorded"

    return "; ".join(f"{role}: {show(old.get(role))} -> now {show(new.get(role))}"
                     for role in sorted(set(old) | set(new)) if old.get(role) != new.get(role))


def _available(need: Need) -> bool:
    """Whether an optional weights file can be had (found, or downloaded and verified)."""
    from uvis.errors import WeightsNotFoundError

    try:
        check_needs([need])
    except WeightsNotFoundError:
        return False
    return True


def _davis_j(dataset: Any, tracks: list[Any]) -> dict[str, float]:
    """DAVIS J (mean per-frame IoU of the best-matching track per object): averaged per video, and over objects."""
    from uvis.evaluation.davis_j import davis_j

    result = davis_j(dataset, tracks)
    return {"mean": result.mean, "object_mean": result.object_mean}


@dataclass
class RunPaths:
    """Where each step of one variant writes."""

    pseudo: Path
    named: Path
    model: Path
    segment: Path

    @property
    def pseudo_file(self) -> Path:
        return self.pseudo / "pseudo_labels.json"

    @property
    def named_file(self) -> Path:
        return self.named / "pseudo_labels.json"

    @property
    def results_file(self) -> Path:
        return self.segment / "results.json"


def _paths(config: RunConfig, main: RunConfig, variant: str | None) -> RunPaths:
    root = Path(config.out)
    own = root / "ablations" / variant if variant else root
    folders = {"pseudo-label": "1-pseudo-labels", "name": "2-named", "train": PIPELINE_MODEL_FOLDER,
               "segment": "4-segment"}
    chosen = {}
    for step, folder in folders.items():
        same = variant is None or step_settings(config, step) == step_settings(main, step)
        chosen[step] = (root if same else own) / folder
    return RunPaths(chosen["pseudo-label"], chosen["name"], chosen["train"], chosen["segment"])


class Pipeline:
    """Runs the steps of one ``RunConfig`` (and its ablation variants) in a run directory.

    Under torchrun (``group``) every process runs every step: each takes its share of the videos in stage 1 and
    segmentation, training is one DDP job, rank 0 writes the step files, evaluates and reports.
    """

    def __init__(self, config: RunConfig, *, log: Callable[[str], None] = print, group: Group | None = None):
        self.config = config
        self.group = group or Group.solo()
        self.log = log if self.group.is_main else _silent
        self.weight_files: dict[str, Path] = {}  # role -> the file used (set by ``run``'s check)
        self.weights: dict[str, dict[str, str]] = {}  # role -> {"file", "sha256"}, recorded by each step
        self.collection: Collection = discover(config.data, frames=config.frames, fps=config.fps,
                                               accept_truncated=config.accept_truncated)
        self.out = Path(config.out)
        for name in config.ablations:
            if name not in ABLATIONS:
                raise UserError(f"unknown ablation '{name}'", fix=f"use some of: {', '.join(ABLATIONS)}")
        if config.train_videos is not None:  # now, not after stage 1 has run
            names = [item.name for item in self.collection.items]
            missing = [n for n in config.train_videos if n not in names]
            if missing or not config.train_videos:
                raise UserError(f"training video(s) not in the input: {', '.join(missing) or '(none given)'}",
                                path=config.data, fix=f"name some of: {', '.join(names[:10])}")

    # --------------------------------------------------------------------------------------- weights
    def weights_needed(self, stop_after: str = "report") -> dict[str, Need]:
        """The pretrained files the steps up to ``stop_after`` use, by role (``dino``, ``clip``, ``backbone``).

        None for stage 1 when the ground truth stands in for it; the model's backbone only with DINO
        initialisation. ``check_weights`` resolves them all before the first step runs.
        """
        from uvis.features.backbones import backbone_need
        from uvis.pseudo.clip_model import ClipConfig, clip_need
        from uvis.train import TrainConfig

        last = STEPS.index(stop_after)
        needs: dict[str, Need] = {}
        config = self.config
        if not config.pseudo_from_ground_truth:
            if config.features in ("dino", "dino+motion"):
                needs["dino"] = backbone_need(config.backbone, config.dino_weights, "dino_weights", "MaskCut (pseudo-label)")
            clip = clip_need(ClipConfig(model_name=config.clip_model, weights=config.clip_weights),
                             "naming masks (name)")
            # motion labels are named when CLIP can be had, and stay class-agnostic otherwise
            if last >= STEPS.index("name") and (config.features != "motion" or _available(clip)):
                needs["clip"] = clip
        if last >= STEPS.index("train"):
            preset = TrainConfig.preset_config(config.train_preset, data="", pseudo="", out="",
                                               backbone_weights=config.backbone_weights)
            for need in preset.weights_needed():
                needs["backbone"] = need
        return needs

    def check_weights(self, stop_after: str = "report") -> dict[str, Path]:
        """Resolve (find, or download and verify) every needed file at once; all missing ones in one error."""
        needs = self.weights_needed(stop_after)
        return dict(zip(needs, check_needs(list(needs.values())), strict=True))

    def _with_weights(self, settings: dict[str, Any], step: str) -> dict[str, Any]:
        """``settings`` plus the name and sha256 of each weights file the steps up to ``step`` use."""
        used = {role: self.weights[role] for role in WEIGHTS_STEP
                if role in self.weights and STEPS.index(WEIGHTS_STEP[role]) <= STEPS.index(step)}
        return {**settings, "weights": used} if used else settings

    # ----------------------------------------------------------------------------------------- steps
    def vocabulary(self, config: RunConfig):  # noqa: ANN201 (Vocabulary; imported lazily)
        from uvis.data.vocabulary import choose_vocabulary

        dataset = self.collection.dataset
        return choose_vocabulary(config.classes, dataset.categories if dataset is not None else [],
                                 source=config.data,
                                 fix="pass vocabulary=configs/NAME.toml or classes=\"a,b,c\"")

    def pseudo_label(self, config: RunConfig, paths: RunPaths) -> None:
        settings = self._with_weights(step_settings(config, "pseudo-label"), "pseudo-label")
        if self._skip("pseudo-label", paths.pseudo, settings):
            return
        if config.pseudo_from_ground_truth:
            from uvis.train.dataset import pseudo_labels_from_dataset

            dataset = self.collection.dataset
            if dataset is None or not dataset.tracks:
                raise UserError("pseudo_from_ground_truth=True needs annotated input", path=config.data,
                                fix="pass a dataset with annotations")
            self.log("[pseudo-label] the ground truth stands in for stage 1 (--pseudo-from-ground-truth): "
                     "no MaskCut, results are not unsupervised")
            if self.group.is_main:
                pseudo_labels_from_dataset(dataset, keep_categories=True).save(paths.pseudo_file)
        else:
            from uvis.pseudo.collection import PseudoLabelConfig, pseudo_label_collection
            from uvis.pseudo.maskcut import MaskCutConfig
            from uvis.pseudo.motioncut import MotionCutConfig

            if config.features == "motion":
                self.log("[pseudo-label] stage 1 from motion (--features motion): MotionCut on residual optical "
                         "flow, no pretrained weights")
            pl_config = PseudoLabelConfig(
                backbone=config.backbone, features=config.features,
                maskcut=MaskCutConfig(resolution=config.resolution, num_masks=config.num_masks, solver=config.solver),
                motion=MotionCutConfig(num_masks=config.num_masks), motion_weight=config.motion_weight,
            )
            pseudo_label_collection(self.collection, paths.pseudo, pl_config, weights=self.weight_files.get("dino"),
                                    device=config.device, batch_size=config.maskcut_batch_size,
                                    progress=config.progress, skip_bad=config.skip_bad_videos, group=self.group)
            if config.skip_bad_videos:
                from uvis.pseudo.collection import skipped_videos

                self._note_left_out("pseudo-label", skipped_videos(self.collection, paths.pseudo))
        self._mark_complete(paths.pseudo, settings)

    def name(self, config: RunConfig, paths: RunPaths) -> None:
        settings = self._with_weights(step_settings(config, "name"), "name")
        if self._skip("name", paths.named, settings):
            return
        if config.pseudo_from_ground_truth:
            from uvis.pseudo.format import load_pseudo_labels

            if self.group.is_main:  # ground truth is already named
                load_pseudo_labels(paths.pseudo_file).save(paths.named_file)
        elif "clip" not in self.weight_files:  # motion labels without CLIP weights
            from uvis.pseudo.format import load_pseudo_labels

            self.log("[name] no CLIP weights: the motion pseudo-labels stay class-agnostic ('object'); pass "
                     "--clip-weights to name them")
            if self.group.is_main:
                load_pseudo_labels(paths.pseudo_file).save(paths.named_file)
        else:
            from uvis.pseudo.clip_model import ClipConfig
            from uvis.pseudo.name_labels import name_file
            from uvis.pseudo.naming import NamingConfig
            from uvis.pseudo.prototypes import PrototypeConfig

            name_file(paths.pseudo_file, self.collection, paths.named_file, self.vocabulary(config),
                      ClipConfig(model_name=config.clip_model, weights=self.weight_files.get("clip"), device=config.device),
                      NamingConfig(templates=config.templates, text_cache_dir=str(self.out / ".cache")),
                      PrototypeConfig(enabled=config.prototypes), parts_dir=paths.named / "parts",
                      progress=config.progress, group=self.group)
        self._mark_complete(paths.named, settings)

    def train(self, config: RunConfig, paths: RunPaths) -> None:
        settings = self._with_weights(step_settings(config, "train"), "train")
        if self._skip("train", paths.model, settings):
            return
        from uvis.train import TrainConfig, train

        pseudo_file = paths.named_file
        if config.train_videos is not None:
            pseudo_file = paths.model / "train_pseudo_labels.json"
            if self.group.is_main:
                self._training_subset(paths.named_file, config.train_videos).save(pseudo_file)
        image_size = tuple(config.image_size) if config.image_size is not None else None
        train_config = TrainConfig.preset_config(
            config.train_preset, data=config.frames or config.data, pseudo=str(pseudo_file),
            out=str(paths.model), steps=config.train_steps, batch_size=config.train_batch_size,
            device=config.device, backbone_weights=_str_or_none(self.weight_files.get("backbone")), image_size=image_size)
        run = RunFolder(paths.model)
        resume = run.has_checkpoint()
        self.group.barrier()  # every process has read the folder before training writes to it
        if resume:
            self.log(f"[train] resuming from {run.checkpoint}")
        train(train_config, resume=resume, progress=config.progress)
        self._mark_complete(paths.model, settings)

    @staticmethod
    def _training_subset(named_file: Path, names: list[str]):  # noqa: ANN205 (PseudoLabels; imported lazily)
        """The pseudo-labels of the videos called ``names`` (the others are held out of training)."""
        from uvis.pseudo.format import load_pseudo_labels

        pseudo = load_pseudo_labels(named_file)
        known = {v.name: v.id for v in pseudo.videos}
        missing = [n for n in names if n not in known]
        if missing or not names:
            raise UserError(f"training video(s) not in the input: {', '.join(missing) or '(none given)'}",
                            fix=f"name some of: {', '.join(sorted(n for n in known if n))}")
        ids = {known[n] for n in names}
        pseudo.videos = [v for v in pseudo.videos if v.id in ids]
        pseudo.instances = [i for i in pseudo.instances if i.video_id in ids]
        return pseudo

    def segment(self, config: RunConfig, paths: RunPaths) -> None:
        settings = self._with_weights(step_settings(config, "segment"), "segment")
        if self._skip("segment", paths.segment, settings):
            return
        from uvis.track.build import build_segmenter
        from uvis.track.collection import segment_collection
        from uvis.track.tracker import TrackerConfig

        tracker = TrackerConfig() if config.track_memory else TrackerConfig.minvis_baseline()
        segmenter = build_segmenter(paths.model, device=self.group.device(config.device), tracker=tracker,
                                    top_k=config.top_k)
        summary = segment_collection(self.collection, self.collection.items, segmenter, paths.segment,
                                     batch_size=config.segment_batch_size, progress=config.progress,
                                     settings=settings, skip_bad=config.skip_bad_videos, group=self.group)
        self._note_left_out("segment", summary["unreadable"])
        self._mark_complete(paths.segment, settings)

    def _mark_complete(self, folder: Path, settings: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        if self.group.is_main:
            atomic.write_json(folder / STEP_FILE, {"settings": settings, **(extra or {})}, indent=2)
        self.group.barrier()  # the next step starts on every process with this one finished

    def _note_left_out(self, step: str, unreadable: dict[str, str]) -> None:
        """Say which videos --skip-bad-videos left out. The step still counts as finished (later steps were made
        without them), so a rerun into this folder keeps them out; after repairing them, use a new --out."""
        if unreadable:
            self.log(f"[{step}] left out {unreadable_list(unreadable)}. This run folder keeps them out; to include "
                     "them once repaired, run again with a new --out")

    def evaluate(self, paths: RunPaths) -> dict[str, dict[str, Any]]:
        """Class-aware (where the vocabulary names the ground truth's classes) and class-agnostic metrics."""
        dataset = self.collection.dataset
        if dataset is None or not dataset.tracks:
            return {}
        from uvis.data.ytvis import Track, load_results
        from uvis.evaluation import evaluate

        preds = load_results(paths.results_file, dataset, check_categories=False)
        out: dict[str, dict[str, Any]] = {}
        agnostic = evaluate(dataset, preds, class_agnostic=True)
        out["class-agnostic"] = {"stats": agnostic.stats, "davis_j": _davis_j(dataset, preds)}
        by_name = {c.name: c.id for c in dataset.categories}
        id_to_name = dict(RunFolder(paths.model).read_vocabulary())
        if len(dataset.categories) > 1 and all(n in by_name for n in id_to_name.values()):
            mapped = [Track(video_id=p.video_id, category_id=by_name[id_to_name[p.category_id]],
                            segmentations=p.segmentations, score=p.score) for p in preds]
            aware = evaluate(dataset, mapped)
            out["class-aware"] = {"stats": aware.stats, "per_class": aware.per_class}
        return out

    def baseline(self, paths: RunPaths) -> dict[str, dict[str, Any]]:
        """Per-frame stage-1 masks linked by previous-frame mask IoU, scored class-agnostically."""
        dataset = self.collection.dataset
        if dataset is None or not dataset.tracks or not paths.pseudo_file.is_file():
            return {}
        from uvis.evaluation import evaluate
        from uvis.pseudo.format import load_pseudo_labels
        from uvis.track.iou_baseline import link_by_iou

        tracks = link_by_iou(load_pseudo_labels(paths.pseudo_file))
        return {"class-agnostic": {"stats": evaluate(dataset, tracks, class_agnostic=True).stats,
                                   "davis_j": _davis_j(dataset, tracks)}}

    # ------------------------------------------------------------------------------------------ driver
    def _skip(self, step: str, folder: Path, settings: dict[str, Any]) -> bool:
        _check_no_conflict(folder, settings)
        if _is_complete(folder, settings):
            self.log(f"[{step}] complete in {folder}, skipped")
            return True
        folder.mkdir(parents=True, exist_ok=True)
        if step in RESUME_CHECKED_STEPS and self.group.is_main:
            atomic.write_json(folder / STARTED_FILE, {"settings": settings}, indent=2)
        self.log(f"[{step}] running into {folder}")
        return False

    def run_variant(self, config: RunConfig, variant: str | None, stop_after: str) -> RunPaths:
        paths = _paths(config, self.config, variant)
        steps = {"pseudo-label": self.pseudo_label, "name": self.name, "train": self.train, "segment": self.segment}
        for step, fn in steps.items():
            fn(config, paths)
            if step == stop_after:
                break
        return paths

    def run(self, stop_after: str = "report") -> Path:
        """Run every step up to ``stop_after``; return the run folder."""
        if stop_after not in STEPS:
            raise UserError(f"unknown step '{stop_after}'", fix=f"use one of: {', '.join(STEPS)}")
        self.weight_files = self.check_weights(stop_after)  # every file, before the first step starts
        self.weights = {role: provenance(path) for role, path in self.weight_files.items()}
        self.out.mkdir(parents=True, exist_ok=True)
        self.group.check_shared(self.out)
        if self.group.is_main:
            atomic.write_json(self.out / "run_config.json", dataclasses.asdict(self.config), indent=2)
            RunFolder(self.out).write_weights_record({role: {**self.weights[role], "path": str(path.resolve())}
                                                      for role, path in self.weight_files.items()})
        paths = self.run_variant(self.config, None, stop_after)
        if STEPS.index(stop_after) < STEPS.index("evaluate"):
            return self.out
        main = self.group.is_main  # evaluation and the report: rank 0 only
        results = {"uvis": self.evaluate(paths)} if main else {}
        if main and not self.config.pseudo_from_ground_truth:
            results[BASELINE] = self.baseline(paths)
        variant_paths = {}
        for name in self.config.ablations:
            self.log(f"[ablation {name}]")
            variant = ABLATIONS[name].apply(self.config)
            variant_paths[name] = self.run_variant(variant, name, "segment")
            if main:
                results[name] = self.evaluate(variant_paths[name])
        if main:
            atomic.write_json(self.out / "metrics.json", results, indent=2)
        if main and stop_after == "report":
            from uvis.report import write_report

            report = write_report(self.out, self.report(paths, results))
            self.log(f"[report] {report}")
        self.group.barrier()  # the job ends when rank 0 has written everything
        return self.out


    # ---------------------------------------------------------------------------------------- report
    def report(self, paths: RunPaths, results: dict[str, dict[str, dict]]) -> RunReport:
        """What ``report.md`` shows of this run: its metrics, baseline and ablations, pseudo-label statistics,
        training log, sample overlays and caveats."""
        from uvis.report import RunReport

        config = self.config
        inputs = RunReport(title=f"uvis run: {Path(config.data).name}",
                           commands=[config.command] if config.command else [],
                           evaluations=_flatten_evaluations(results), row_meanings=dict(ROW_MEANINGS))
        inputs.per_class_ap = results.get("uvis", {}).get("class-aware", {}).get("per_class", {})
        if paths.named_file.is_file():
            named = json.loads(paths.named_file.read_text())
            per_frame: dict[tuple[int, int], int] = {}
            for a in named["annotations"]:
                key = (a["video_id"], a["frame_index"])
                per_frame[key] = per_frame.get(key, 0) + 1
            inputs.masks_per_frame = [per_frame.get((v["id"], t), 0) for v in named["videos"]
                                      for t in range(len(v["file_names"]))]
            per_class = named.get("stats", {}).get("naming", {}).get("per_class", {})
            inputs.prototype_counts = {name: {k: int(c.get(k, 0)) for k in ("kept", "removed", "relabelled")}
                                       for name, c in per_class.items()}
        inputs.overlay_rows = overlay_samples(self.collection, paths.segment)
        inputs.training = RunFolder(paths.model).read_metrics()
        if config.features == "motion" and not config.pseudo_from_ground_truth:
            inputs.notes.append("Stage 1 came from motion (--features motion): MotionCut masks on residual optical "
                                "flow, with no pretrained weights and no ground truth in stages 1-3.")
        inputs.weights = {WEIGHTS_USE.get(role, role): w for role, w in self.weights.items()}
        if config.pseudo_from_ground_truth:
            inputs.masks_heading = "Training labels (the ground truth, standing in for pseudo-labels)"
            inputs.notes.append("Stage 1 was replaced by the ground truth (--pseudo-from-ground-truth): these "
                                "numbers measure stages 2-3 only, not the unsupervised pipeline. There is no "
                                "baseline row: linking ground-truth masks by IoU would score the ground truth itself.")
        if config.train_videos is not None:
            held_out = [i.name for i in self.collection.items if i.name not in set(config.train_videos)]
            inputs.notes.append(f"The model was trained on {len(config.train_videos)} of "
                                f"{len(self.collection.items)} videos; held out: {', '.join(held_out) or 'none'}. "
                                "The metrics above pool both kinds.")
        if not inputs.evaluations:
            inputs.notes.append("The input has no annotations, so no metrics; see the overlays.")
        return inputs


def overlay_samples(collection: Collection, segment_dir: Path, videos: int = 4, per_video: int = 3,
                    thumb_width: int = THUMB_WIDTH) -> list[OverlayRow]:
    """First, middle and last frame of the first few finished videos, one row per video, drawn at the
    thumbnail's size so that their labels stay readable in the contact sheet."""
    from uvis.report import OverlayRow
    from uvis.track.collection import finished_results

    rows: list[OverlayRow] = []
    for item, result in finished_results(collection, segment_dir)[:videos]:
        n = result.num_frames
        wanted = {0, n // 2, n - 1} if per_video >= 3 else {0}
        row = OverlayRow(video=item.name, frames=[], frame_indices=[], tracks=len(result.tracks))
        for t, frame in enumerate(result.video):
            if t in wanted:
                row.frames.append(result.draw_frame(t, frame, width=thumb_width))
                row.frame_indices.append(t)
        rows.append(row)
    return rows


def _flatten_evaluations(results: dict[str, dict[str, dict]]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for run_name, modes in results.items():
        for mode, payload in modes.items():
            j = payload.get("davis_j", {}).get("mean")
            rows[f"{run_name} ({mode})"] = {**payload["stats"], **({"J": j} if j is not None else {})}
    return rows


def _str_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _silent(_: str) -> None:
    """The log of processes other than rank 0 (rank 0 speaks for the job)."""


def run_pipeline(config: RunConfig, stop_after: str = "report", *, log: Callable[[str], None] = print,
                 group: Group | None = None) -> Path:
    """Run ``config``; under torchrun pass the job's ``group`` (``uvis.distributed.job``) from every process."""
    config.check()
    if config.device == "auto":  # every step picks CUDA when present from None
        config = dataclasses.replace(config, device=None)
    return Pipeline(config, log=log, group=group).run(stop_after)
