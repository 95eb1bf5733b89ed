"""The s1 sampler (gsv_edu.gpt.sampling) against the official one on fixed logits.

tests/fixtures/gpt/sampling.pt (tools/official_fixtures/gpt.py): for six settings of
(temperature, top_k, top_p, repetition_penalty), the official `logits_to_probs` result, the
logits it leaves behind (the penalty is written in place), and 50 seeded `sample` draws; 100
seeded exponential-race draws; the official pad masks; torchmetrics' top-3 accuracy.
"""
from __future__ import annotations

import pytest
import torch

from conftest import FIXTURES, assert_fixture_close
from gsv_edu.gpt.sampling import apply_repetition_penalty, exponential_race, logits_to_probs, sample
from gsv_edu.gpt.t2s_model import make_pad_mask, make_pad_mask_left, top_k_accuracy

DATA = torch.load(FIXTURES.parent / "gpt" / "sampling.pt", map_location="cpu", weights_only=True)
SAMPLER = DATA["sampler"]


@pytest.mark.parametrize("i", range(len(SAMPLER["cases"])))
def test_distribution_and_in_place_penalty_match_official(i):
    case = SAMPLER["cases"][i]
    work = SAMPLER["logits"].clone()
    probs = logits_to_probs(work, SAMPLER["previous"], **case["kwargs"])
    assert_fixture_close(probs, case["probs"])
    assert_fixture_close(work, case["logits_after"])  # penalised in place, as upstream
    # what each filter leaves: the support of the distribution
    assert torch.equal(probs > 0, case["probs"] > 0)


@pytest.mark.parametrize("i", range(len(SAMPLER["cases"])))
def test_seeded_draws_match_official(i):
    case = SAMPLER["cases"][i]
    torch.manual_seed(100 + i)
    draws = torch.cat([sample(SAMPLER["logits"].clone(), SAMPLER["previous"], **case["kwargs"])[0]
                       for _ in range(50)], dim=1)
    assert draws.dtype == torch.int32
    assert torch.equal(draws, case["draws"])


def test_top_k_one_and_zero_temperature_are_greedy():
    logits = SAMPLER["logits"].clone()
    torch.manual_seed(0)
    tok, probs = sample(logits.clone(), None, top_k=1)
    assert torch.equal(tok[:, 0].long(), logits.argmax(-1))
    assert torch.equal(probs.max(-1).values, torch.ones(3))
    tok, _ = sample(logits.clone(), None, temperature=0.0, top_k=1025)  # clamped to 1e-5
    assert torch.equal(tok[:, 0].long(), logits.argmax(-1))


def test_exponential_race_matches_official_draws():
    torch.manual_seed(11)
    tokens = torch.cat([exponential_race(SAMPLER["race_probs"]) for _ in range(100)], dim=1)
    assert torch.equal(tokens, SAMPLER["race_tokens"])


def test_exponential_race_draws_from_the_distribution():
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).expand(20000, 4)
    g = torch.Generator().manual_seed(0)
    freq = torch.bincount(exponential_race(p, g)[:, 0].long(), minlength=4).double() / 20000
    # binomial standard error at n=20000 is at most 0.0036: 4 sigma
    torch.testing.assert_close(freq, p[0].double(), atol=0.015, rtol=0)


def test_repetition_penalty_rule():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    out = apply_repetition_penalty(logits, torch.tensor([[0, 1, 0, 0]]), 2.0, inplace=False)
    assert out.tolist() == [[1.0, -4.0, 1.0, 0.5]]  # once per token, however often it occurred
    assert logits.tolist() == [[2.0, -2.0, 1.0, 0.5]]
    apply_repetition_penalty(logits, torch.tensor([[3]]), 2.0)
    assert logits.tolist() == [[2.0, -2.0, 1.0, 0.25]]


def test_top_p_keeps_the_best_token_even_alone():
    logits = torch.tensor([[10.0, 0.0, 0.0, -1.0]])
    probs = logits_to_probs(logits.clone(), top_p=0.01, top_k=4)
    assert probs.tolist() == [[1.0, 0.0, 0.0, 0.0]]
    # upstream's nucleus keeps a token while the mass up to and including it stays <= top_p:
    # cumulative 0.5, 0.8, 0.95, 1.0, so top_p 0.85 keeps two tokens and 0.7 only one (Holtzman
    # et al.'s smallest set *reaching* top_p would keep two)
    p = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    torch.testing.assert_close(logits_to_probs(p.clone(), top_p=0.85, top_k=4), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    torch.testing.assert_close(logits_to_probs(p.clone(), top_p=0.7, top_k=4), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))


def test_pad_masks_match_official():
    lengths = SAMPLER["pad_mask_lengths"]
    assert torch.equal(make_pad_mask(lengths), SAMPLER["make_pad_mask"])
    assert torch.equal(make_pad_mask_left(lengths), SAMPLER["make_pad_mask_left"])
    assert torch.equal(make_pad_mask_left(lengths, 7), SAMPLER["make_pad_mask_left_7"])


def test_top3_accuracy_matches_torchmetrics():
    acc = DATA["accuracy"]
    ours = top_k_accuracy(acc["logits"], acc["targets"], k=3, ignore_index=1024).item()
    assert ours == pytest.approx(acc["acc"], abs=1e-7)
    assert 0.2 < acc["acc"] < 1.0  # the planted hits count, the EOS places do not
