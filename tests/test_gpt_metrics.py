"""Token error rate: Levenshtein distance over the reference's length."""
import pytest
import torch

from gsv_edu.gpt.metrics import edit_distance, token_error_rate


@pytest.mark.parametrize("a, b, d", [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("flaw", "lawn", 2),
                                     ("same", "same", 0), ([1, 2, 3, 4], [4, 3, 2, 1], 4)])
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d


def test_token_error_rate():
    ref = torch.tensor([5, 6, 7, 8])
    assert token_error_rate(ref, ref) == 0.0
    assert token_error_rate(torch.tensor([5, 7, 8]), ref) == 0.25        # one deletion
    assert token_error_rate([5, 6, 9, 7, 8, 1], ref) == 0.5              # two insertions
    assert token_error_rate([], ref) == 1.0
    with pytest.raises(ValueError, match="no token"):
        token_error_rate([1], [])
