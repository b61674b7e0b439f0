"""The training engine shared by :class:`~hamkit.LesionClassifier` and
:class:`~hamkit.LesionSegmenter`: device and mixed precision, the epoch loop with progress bars,
history, best and last checkpoints, early stopping, resume, and torchrun (DDP).

An estimator describes its job with a :class:`~hamkit.engine.trainer.TrainingTask` (how to
compute the loss of a batch, and how to score a validation set); the
:class:`~hamkit.engine.trainer.Trainer` does the rest.
"""
