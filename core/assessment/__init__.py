"""Accuracy assessment of a job's map: a recorded stratified random sample of its tiles, reference labels for it,
and the estimators of Olofsson et al. 2014 (error matrix, accuracies and error-adjusted areas with 95% intervals).

- ``estimators``: the stratified (ratio) estimators, pure Python, on labelled sample units or an error matrix.
- ``sampling`` and ``store``: drawing the sample and keeping it and its labels in the database.

Kept light: importing the package imports no database, numpy or plotting code.
"""

from core.errors import TileclassError


class AssessmentError(TileclassError):
    """An assessment's input cannot be used: too few labelled units, an unknown class, a malformed error matrix."""
