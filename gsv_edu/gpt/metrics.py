"""How close generated semantic tokens are to a recording's: edit distance and token error rate.

The GPT's output is a token sequence of its own length, so positions cannot be compared one by
one; the token error rate (TER) is the Levenshtein distance (substitutions, insertions,
deletions, each costing 1) divided by the reference's length, as the word error rate of speech
recognition is. 0 means the recording's tokens exactly; two unrelated sentences of the same voice
score about 0.9 on the sample corpus (book chapter 13 measures it). Not part of the official
code, which has no metric for its tokens.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["edit_distance", "token_error_rate"]


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (one row of the dynamic programme kept)."""
    row = list(range(len(b) + 1))  # distances from a[:0] to every prefix of b
    for i, ai in enumerate(a, 1):
        diag, row[0] = row[0], i
        for j, bj in enumerate(b, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (ai != bj))
    return row[-1]


def token_error_rate(generated: Sequence[int], reference: Sequence[int]) -> float:
    """edit_distance(generated, reference) / len(reference); tensors are read as lists of ints."""
    generated = generated.tolist() if hasattr(generated, "tolist") else list(generated)
    reference = reference.tolist() if hasattr(reference, "tolist") else list(reference)
    if not reference:
        raise ValueError("token_error_rate: the reference has no token")
    return edit_distance(generated, reference) / len(reference)
