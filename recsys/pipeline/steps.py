"""The daily pipeline's steps, in the order they run.

The Step Functions state machine (stacks/pipeline.py) names its states after these, and the local runner
(`make demo`) runs the same steps in the same order, so the two cannot drift apart.
"""

from __future__ import annotations

from enum import Enum


class Step(str, Enum):
    VALIDATE_INPUT = "ValidateInput"
    BATCH_FEATURES = "BatchFeatures"
    INGEST_FEATURES = "IngestFeatures"
    BUILD_TRAINING_SET = "BuildTrainingSet"
    TRAIN = "Train"
    EVALUATE = "Evaluate"
    QUALITY_GATE = "QualityGate"
    REGISTER_MODEL = "RegisterModel"
    DEPLOY = "Deploy"
    NOTIFY = "Notify"


PIPELINE_STEPS: tuple[Step, ...] = tuple(Step)
