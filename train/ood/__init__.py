"""Out-of-distribution scoring: say "unknown" for anything that is not a note the model knows.

One module per job: :mod:`~train.ood.taps` (the activations read), :mod:`~train.ood.methods`
(fit and score maths), :mod:`~train.ood.scorer` (``OODScorer`` / ``WithOOD`` modules and the
checkpoint's ``ood`` dict), :mod:`~train.ood.calibrate` (the threshold), :mod:`~train.ood.fit`
(fitting a checkpoint's scorer), :mod:`~train.ood.sets` (evaluation sets),
:mod:`~train.ood.metrics`, :mod:`~train.ood.evaluate`, :mod:`~train.ood.report`,
:mod:`~train.ood.study` and the CLI ``python -m train.ood``.
"""
