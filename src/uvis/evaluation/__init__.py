"""YouTube-VIS evaluation: ``evaluate(gt, preds) -> EvalResult`` with the official AP/AR rules."""

from uvis.evaluation.ytvis_eval import STAT_KEYS, EvalResult, evaluate

__all__ = ["STAT_KEYS", "EvalResult", "evaluate"]
