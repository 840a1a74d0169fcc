"""Answer grading: extraction and equivalence that never run model text as code.

Everything in mathsft that decides "correct" (eval, traces, filtered sweeps, ``mathsft grade``) calls
``grade``. Bump ``GRADER_VERSION`` whenever a verdict can change, so stored results get regraded.
"""

from mathsft.grading.equivalence import PROFILES, clear_caches, is_equivalent
from mathsft.grading.extract import STYLES, extract_answer
from mathsft.grading.grade import Grade, grade, grade_many

GRADER_VERSION = "3.2"

__all__ = [
    "GRADER_VERSION",
    "PROFILES",
    "STYLES",
    "Grade",
    "clear_caches",
    "extract_answer",
    "grade",
    "grade_many",
    "is_equivalent",
]
