"""How the GPT stage (s1) picks the next semantic token from its logits.

Mirrors `GPT_SoVITS/AR/models/utils.py · logits_to_probs, multinomial_sample_one_no_sync,
sample @48b1a01`. The order of the knobs is part of the result, so it is kept exactly:

1. **repetition penalty** (Keskar et al. 2019, CTRL, §4.1): every token already in the sequence
   (the prompt's tokens included) has its logit divided by `repetition_penalty` if positive,
   multiplied if negative — *before* any filtering, on the raw logits;
2. **top-p** (nucleus, Holtzman et al. 2020, §3.1): sort by probability and keep a token while
   the mass up to and including it is <= `top_p` (the most probable token is always kept);
   skipped when top_p >= 1. Unlike the paper's nucleus (the smallest set whose mass *reaches*
   top_p) upstream drops the token that crosses the threshold, so the kept mass is <= top_p;
3. **temperature**: logits / max(temperature, 1e-5);
4. **top-k**: keep the k largest logits (ties with the k-th are kept too);
5. softmax, then one draw by the **exponential race**: argmax(p_i / E_i) with E_i ~ Exp(1)
   i.i.d. picks token i with probability p_i (it is the Gumbel-max trick in another form:
   argmax p_i/E_i = argmax (log p_i - log E_i), and -log E_i is Gumbel-distributed). It needs
   no cumulative sum and no device synchronisation; it consumes one exponential draw per
   vocabulary entry from the global generator, which is why a seed fixes the tokens.

Upstream quirk kept: the repetition penalty is written *into the caller's logits tensor*
(an in-place scatter), and the decoder's EOS test (`argmax(logits) == EOS`) runs after the
call, so it sees the penalised logits. `apply_repetition_penalty(..., inplace=True)` does
the same; `logits_to_probs` defaults to it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["apply_repetition_penalty", "logits_to_probs", "exponential_race", "sample"]


def apply_repetition_penalty(logits: torch.Tensor, previous_tokens: torch.Tensor, penalty: float,
                             inplace: bool = True) -> torch.Tensor:
    """Divide positive / multiply negative logits of every token in `previous_tokens` by `penalty`.

    logits [B, V], previous_tokens [B, T] (any integer dtype). A token that occurs several times
    is penalised once (the same value is scattered back to it).
    """
    previous_tokens = previous_tokens.long()
    score = torch.gather(logits, dim=1, index=previous_tokens)  # [B, T]
    score = torch.where(score < 0, score * penalty, score / penalty)
    out = logits if inplace else logits.clone()
    return out.scatter_(dim=1, index=previous_tokens, src=score)


def logits_to_probs(logits: torch.Tensor, previous_tokens: torch.Tensor | None = None, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None,
                    repetition_penalty: float = 1.0) -> torch.Tensor:
    """The sampling distribution [B, V] (see the module docstring for the order of the steps).

    `logits` is modified in place by the repetition penalty, as upstream (pass a clone to keep it).
    """
    if previous_tokens is not None and repetition_penalty != 1.0:
        apply_repetition_penalty(logits, previous_tokens, repetition_penalty, inplace=True)

    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)  # [B, V]
        cum_probs = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove_sorted = cum_probs > top_p
        remove_sorted[:, 0] = False  # the most probable token always stays
        remove = remove_sorted.scatter(dim=1, index=sorted_indices, src=remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))

    logits = logits / max(temperature, 1e-5)

    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # [B, 1]
        logits = torch.where(logits < kth, float("-inf"), logits)

    return F.softmax(logits, dim=-1)


def exponential_race(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row, drawn from `probs` [B, V] as argmax(p / E), E ~ Exp(1): [B, 1] int32."""
    race = torch.empty_like(probs).exponential_(1, generator=generator)
    return torch.argmax(probs / race, dim=-1, keepdim=True).to(dtype=torch.int)


def sample(logits: torch.Tensor, previous_tokens: torch.Tensor | None = None, *, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(next tokens [B, 1] int32, the distribution they were drawn from [B, V])."""
    probs = logits_to_probs(logits, previous_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty)
    return exponential_race(probs, generator), probs
