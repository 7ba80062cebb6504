"""Training hyperparameters and the choices they accept; torch-free, so a producer host can validate and queue them.

``TrainConfig`` is a frozen dataclass of JSON types: ``dataclasses.asdict(config)`` goes into the checkpoint and
into train-queue messages, and ``TrainConfig(**that_dict)`` restores it (raising ``DataError`` for a bad value).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.choices import DEVICE_CHOICES, TRAIN_PRECISIONS, check_choice, is_device
from model.errors import DataError

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")
HEADS = ("linear", "tutorial")
FREEZE = ("none", "backbone")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "constant")
AUGMENTATIONS = ("overhead", "none")
NORMALIZATIONS = ("imagenet", "none")  # imagenet: ImageNet mean/std; none: pixels scaled to 0..1 only


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters; stored in the checkpoint and sent to train workers as ``dataclasses.asdict(config)``.

    The defaults are the fast from-scratch recipe (ResNet18 at the data's native size, SGD Nesterov, label
    smoothing, warm-up + cosine). The PyTorch tutorial's recipe is ``arch="resnet50", weights="imagenet",
    freeze="backbone", head="tutorial", optimizer="adam", lr=0.003, batch_size=64, epochs=1, schedule="constant",
    label_smoothing=0, weight_decay=0, image_size=224, eval_every=10, augment="none", normalize="none"``.
    """

    arch: str = "resnet18"
    weights: str = "none"  # none, imagenet, or a path to a torchvision state_dict
    head: str = "linear"
    freeze: str = "none"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"  # sgd is Nesterov with momentum 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    schedule: str = "cosine"
    warmup: float = 0.03  # share of the schedule spent warming up (cosine only)
    time_budget_minutes: float | None = None
    val_split: float = 0.2
    seed: int = 0
    image_size: int | None = None  # None: the data's native size
    augment: str = "overhead"
    device: str = "auto"
    precision: str = "auto"
    eval_every: int = 0  # also evaluate every N steps (the tutorial's 10); 0: once per epoch
    workers: int = 0  # image decoding threads; 0: one per CPU
    val_dir: str | None = None  # validate on this ImageFolder instead of splitting; train on all of data_dir
    normalize: str = "imagenet"
    ema: bool = False  # also keep an exponential moving average of the weights; it is what is validated and saved
    ema_decay: float = 0.999
    progressive_resize: bool = False  # small images early, growing to image_size by 3/4 of the run
    progressive_start: float = 0.5  # the first images' side as a share of image_size
    keep_epochs: int = 2  # epoch checkpoints kept in out_dir/epochs (the newest ones)

    def __post_init__(self) -> None:
        for name, value, choices in (("arch", self.arch, ARCHS), ("head", self.head, HEADS),
                                     ("freeze", self.freeze, FREEZE), ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("schedule", self.schedule, SCHEDULES), ("augment", self.augment, AUGMENTATIONS),
                                     ("precision", self.precision, TRAIN_PRECISIONS),
                                     ("normalize", self.normalize, NORMALIZATIONS)):
            check_choice(name, value, choices, error=DataError)
        if not is_device(self.device):
            raise DataError(f"unknown device {self.device!r}: choose one of {DEVICE_CHOICES}")
        checks = [("epochs", self.epochs >= 1, ">= 1"), ("batch_size", self.batch_size >= 2, ">= 2"),
                  ("lr", self.lr > 0, "> 0"), ("weight_decay", self.weight_decay >= 0, ">= 0"),
                  ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
                  ("warmup", 0 <= self.warmup < 1, "in [0, 1)"), ("val_split", 0 < self.val_split < 1, "in (0, 1)"),
                  ("image_size", self.image_size is None or 8 <= self.image_size <= 4096, "8..4096 pixels"),
                  ("eval_every", self.eval_every >= 0, ">= 0 steps"), ("workers", self.workers >= 0, ">= 0"),
                  ("time_budget_minutes", self.time_budget_minutes is None or self.time_budget_minutes > 0, "> 0"),
                  ("ema_decay", 0 < self.ema_decay < 1, "in (0, 1)"),
                  ("progressive_start", 0 < self.progressive_start <= 1, "in (0, 1]"),
                  ("keep_epochs", self.keep_epochs >= 1, ">= 1")]
        for name, ok, rule in checks:
            if not ok:
                raise DataError(f"invalid {name} {getattr(self, name)!r}: must be {rule}")
