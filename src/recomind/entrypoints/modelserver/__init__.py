"""`recomind modelserver`: the ranker hosted the way SageMaker hosts a model.

`serve` answers `GET /ping` and `POST /invocations` (app.py); `train` fits a model
from the lake like a SageMaker training job and writes it where `serve` reads it
(training.py). The model folder is a model registry (versions, CURRENT, HISTORY).
"""
