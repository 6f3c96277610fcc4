"""The default model's training recipe in one place, read by ``TrainConfig`` and the CLI.

Chosen by measurement for the product (README, "The synthetic set"): the course's recipe (10
epochs, constant LR, RandomCrop + RandomGrayscale p=0.8, no outlier exposure) left the default
model underfit on today's notes and unable to say "unknown". The course experiments
(``python -m train.compare``) pass :data:`COURSE` explicitly. Importing this costs nothing.
"""

from __future__ import annotations

EPOCHS = 30
LR = 0.01
SCHEDULE = "cosine"  # "cosine": CosineAnnealingLR over all epochs; "step": StepLR (the course's)
SCHEDULES = ("cosine", "step")
AUGMENT = "product"  # train.augment: "product" or "course"
AUGMENTS = ("product", "course")
OUTLIER_EXPOSURE = True  # train against non-note images (train.ood.negatives)
# The served weights are an exponential moving average of SGD's (0 = SGD's own): smoother than
# the last step's, they read unseen 5th-series notes better (README, "The synthetic set").
EMA_DECAY = 0.9995

COURSE = {
    "epochs": 10,
    "lr": 0.01,
    "schedule": "step",
    "augment": "course",
    "outlier_exposure": False,
    "ema_decay": 0.0,
}
