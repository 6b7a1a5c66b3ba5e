"""Per-frame prediction, between training and tracking: frames in, ``FrameDetections`` out.

- ``types``: ``FrameDetections``, what every predictor gives and the tracker consumes;
- ``base``: ``Predictor``, the interface (vocabulary, ``predict``, ``with_vocabulary``, ``fingerprint`` ...);
- ``trained``: a trained run's model (``TrainedPredictor.from_run``);
- ``stage1``: the training-free path (MaskCut or MotionCut masks, named by CLIP);
- ``self_training``: a trained model's confident predictions as the next round's pseudo-labels;
- ``build``: ``build_predictor``, the one way the CLI, the pipeline and the Python API make a predictor (the
  Segmenter around one comes from ``uvis.track.build.build_segmenter``, since tracking comes after prediction).
"""
