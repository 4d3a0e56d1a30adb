"""Self-training a small language model (notebook 12): the preference/RL losses in fp64 against independent
computations, the addition task and its verifier, the character LM's sampler, and the loops."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from sslcookbook.data.arithmetic import (
    EOS,
    PAD,
    VOCAB,
    AdditionTask,
    Problem,
    decode,
    encode,
    make_problem_sets,
)
from sslcookbook.losses import clipped_surrogate, dpo_loss, group_relative_advantages, grpo_loss, kl_k3
from sslcookbook.methods import lm_self_training as lm
from sslcookbook.models import CharLM, completion_log_probs, completion_mask, generate

F64 = torch.float64


def _logps(n, seed):
    return [(-3 * torch.rand(n, generator=torch.Generator().manual_seed(seed + i), dtype=F64))
            .requires_grad_() for i in range(4)]


# ---- losses ----------------------------------------------------------------------------------------------

def test_dpo_loss_matches_the_formula_and_its_gradient_in_fp64():
    pc, pr, rc, rr = _logps(7, 0)
    beta = 0.3
    loss = dpo_loss(pc, pr, rc, rr, beta)
    margins = [beta * ((a - c) - (b - d))
               for a, b, c, d in zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist())]
    expected = sum(math.log1p(math.exp(-m)) for m in margins) / len(margins)  # -log σ(m) = log(1 + e^{-m})
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    # d/d pc of log(1 + e^{-m}) / N = -β σ(-m) / N; the rejected side and the reference: the opposite sign
    expected_grad = torch.tensor([-beta / (1 + math.exp(m)) / len(margins) for m in margins], dtype=F64)
    torch.testing.assert_close(pc.grad, expected_grad, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(pr.grad, -expected_grad, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(rc.grad, -expected_grad, rtol=1e-12, atol=1e-15)
    assert torch.autograd.gradcheck(lambda *x: dpo_loss(*x, beta=beta), _logps(5, 10))


def test_dpo_loss_prefers_the_chosen_and_checks_its_input():
    zero = torch.zeros(3, dtype=F64)
    assert dpo_loss(zero, zero, zero, zero).item() == pytest.approx(math.log(2))
    assert dpo_loss(zero + 1, zero - 1, zero, zero) < math.log(2) < dpo_loss(zero - 1, zero + 1, zero, zero)
    with pytest.raises(ValueError, match="shapes differ"):
        dpo_loss(zero, zero[:2], zero, zero)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(zero, zero, zero, zero, beta=0.0)


def test_group_relative_advantages_standardise_each_group():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.5, 1.0, 2.5]], dtype=F64)
    advantages = group_relative_advantages(rewards, eps=0.0 + 1e-12)
    for row, out in zip(rewards.tolist(), advantages.tolist()):
        mean = sum(row) / len(row)
        std = math.sqrt(sum((r - mean) ** 2 for r in row) / len(row))
        for r, a in zip(row, out):
            assert a == pytest.approx((r - mean) / (std + 1e-12) if std else 0.0, abs=1e-9)
    assert advantages[1].abs().max() == 0  # all right: nothing to learn from this group
    with pytest.raises(ValueError, match="k ≥ 2"):
        group_relative_advantages(rewards[:, :1])


def test_clipped_surrogate_and_its_gradient_are_pessimistic_and_clipped():
    old = torch.zeros(4, dtype=F64)
    new = torch.log(torch.tensor([0.5, 1.1, 1.5, 1.5], dtype=F64)).requires_grad_()
    advantages = torch.tensor([1.0, 1.0, 1.0, -1.0], dtype=F64)
    out = clipped_surrogate(new[None], old[None], advantages[None], clip_eps=0.2)[0]
    expected = []
    for ratio, a in zip([0.5, 1.1, 1.5, 1.5], advantages.tolist()):
        expected.append(min(ratio * a, min(max(ratio, 0.8), 1.2) * a))
    torch.testing.assert_close(out, torch.tensor(expected, dtype=F64))
    out.sum().backward()
    # d(ρA)/d log ρ = ρA where the unclipped branch is taken, 0 where the clipped (constant) one is
    torch.testing.assert_close(new.grad, torch.tensor([0.5, 1.1, 0.0, -1.5], dtype=F64))


def test_kl_k3_is_non_negative_and_its_expectation_is_the_exact_kl():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(6, generator=g, dtype=F64), 0)
    q = torch.softmax(torch.randn(6, generator=g, dtype=F64), 0)
    k3 = kl_k3(p.log(), q.log())  # π_θ = p, π_ref = q, per outcome
    assert (k3 >= 0).all()
    assert (p * k3).sum().item() == pytest.approx((p * (p.log() - q.log())).sum().item(), rel=1e-12)
    assert kl_k3(p.log(), p.log()).abs().max() == 0


def test_grpo_loss_matches_a_loop_over_sequences_and_tokens_in_fp64():
    g = torch.Generator().manual_seed(1)
    b, t, clip, beta = 5, 4, 0.2, 0.1
    new = (-2 * torch.rand(b, t, generator=g, dtype=F64)).requires_grad_()
    old = (new.detach() + 0.3 * torch.randn(b, t, generator=g, dtype=F64))
    ref = -2 * torch.rand(b, t, generator=g, dtype=F64)
    advantages = torch.randn(b, generator=g, dtype=F64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]).bool()
    loss = grpo_loss(new, old, ref, advantages, mask, clip, beta)
    total = 0.0
    for i in range(b):
        tokens = [j for j in range(t) if mask[i, j]]
        per_seq = 0.0
        for j in tokens:
            ratio = math.exp(new[i, j].item() - old[i, j].item())
            a = advantages[i].item()
            surrogate = min(ratio * a, min(max(ratio, 1 - clip), 1 + clip) * a)
            log_r = ref[i, j].item() - new[i, j].item()
            per_seq += surrogate - beta * (math.exp(log_r) - log_r - 1)
        total += per_seq / len(tokens)
    assert loss.item() == pytest.approx(-total / b, rel=1e-12)
    assert torch.autograd.gradcheck(lambda x: grpo_loss(x, old, ref, advantages, mask, clip, beta), (new,))
    with pytest.raises(ValueError, match="one value per completion"):
        grpo_loss(new, old, ref, advantages[:2], mask)


# ---- task, verifier, data -------------------------------------------------------------------------------

def test_verifier_accepts_exactly_the_reversed_sum():
    task = AdditionTask(3)
    problem = Problem(123, 45)
    assert task.prompt(problem) == "123+045=" and task.answer(problem) == "861"
    assert task.check(problem, "861") and not task.check(problem, "168") and not task.check(problem, "8610")
    assert task.read_answer("861") == 168 and task.read_answer("86+") is None and task.read_answer("") is None
    assert AdditionTask(3, reverse_answer=False).answer(problem) == "168"
    assert decode(encode("861") + [EOS, PAD, 3]) == "861"
    with pytest.raises(ValueError, match="cannot encode"):
        encode("8a1")
    with pytest.raises(ValueError, match="max_digits"):
        AdditionTask(0)


def test_problem_sets_are_seeded_disjoint_and_cover_every_length():
    task = AdditionTask(3)
    sets = make_problem_sets(task, 50, 200, 100, seed=3)
    again = make_problem_sets(task, 50, 200, 100, seed=3)
    other = make_problem_sets(task, 50, 200, 100, seed=4)
    assert sets == again and sets != other
    assert len(set(sets.seed) | set(sets.pool) | set(sets.test)) == 350
    assert {len(str(p.a)) for p in sets.pool} == {1, 2, 3}
    prompts = task.encode_prompts(sets.seed)
    assert prompts.shape == (50, task.prompt_length)
    with pytest.raises(ValueError, match="too many"):
        make_problem_sets(AdditionTask(1), 20, 20, 20)


# ---- the character LM -----------------------------------------------------------------------------------

def _tiny_lm(seed=0):
    torch.manual_seed(seed)
    task = AdditionTask(2)
    return task, CharLM(len(VOCAB), task.prompt_length + task.completion_length, width=16, depth=1, heads=2)


def test_char_lm_is_causal():
    _, model = _tiny_lm()
    ids = torch.randint(2, len(VOCAB), (2, 9))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % len(VOCAB)
    torch.testing.assert_close(model(ids)[:, :6], model(changed)[:, :6])
    assert not torch.allclose(model(ids)[:, 6:], model(changed)[:, 6:])


def test_sampling_is_deterministic_under_a_seed_and_pads_after_the_end():
    task, model = _tiny_lm()
    prompts = task.encode_prompts([Problem(12, 34), Problem(5, 67)]).repeat(8, 1)
    draw = [generate(model, prompts, task.completion_length, EOS, PAD, 1.0, torch.Generator().manual_seed(s))
            for s in (0, 0, 1)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    for row in draw[0]:
        ends = (row == EOS).nonzero().flatten()
        if len(ends):
            assert (row[ends[0] + 1 :] == PAD).all()
    greedy = generate(model, prompts[:2], 1, EOS, PAD, 0.0)
    assert torch.equal(greedy[:, 0], model(prompts[:2])[:, -1].argmax(-1))


def test_cached_decoding_matches_recomputing_the_whole_sequence():
    task, model = _tiny_lm()
    model.eval()
    prompts = task.encode_prompts([Problem(12, 34), Problem(5, 67), Problem(99, 1)])
    cache, sequence = model.new_cache(), prompts
    logits = model(prompts, cache)[:, -1]
    for _ in range(task.completion_length - 1):
        torch.testing.assert_close(logits, model(sequence)[:, -1])
        token = logits.argmax(-1, keepdim=True)
        sequence = torch.cat([sequence, token], 1)
        logits = model(token, cache)[:, -1]
    torch.testing.assert_close(logits, model(sequence)[:, -1])
    # greedy generate is the argmax of the full recomputation, token by token
    torch.testing.assert_close(generate(model, prompts, task.completion_length, EOS, PAD, 0.0)[:, :-1],
                               sequence[:, prompts.shape[1]:])
    prompt_only = model.new_cache()
    model(prompts, prompt_only)
    with pytest.raises(ValueError, match="one new position"):
        model(sequence[:, :2], prompt_only)
    model(sequence[:, :1], cache)  # the context's last position
    with pytest.raises(ValueError, match="longer than context_length"):
        model(sequence[:, :1], cache)


def test_completion_log_probs_sum_the_tokens_up_to_the_end():
    task, model = _tiny_lm()
    prompts = task.encode_prompts([Problem(12, 34), Problem(5, 67)])
    completions = task.encode_completions(["64", "27"])  # 2 digits, the end, padding
    assert completion_mask(completions, EOS).sum(1).tolist() == [3, 3]
    logits = model(torch.cat([prompts, completions], 1)).log_softmax(-1)
    p = task.prompt_length
    manual = torch.stack([sum(logits[i, p - 1 + j, completions[i, j]] for j in range(3)) for i in range(2)])
    torch.testing.assert_close(completion_log_probs(model, prompts, completions, EOS), manual)


# ---- the loops ------------------------------------------------------------------------------------------

TINY = replace(lm.SETTINGS["smoke"], max_digits=2, seed_size=150, pool_size=200, test_size=60, width=32,
               sft_steps=150, iterations=1, problems_per_iteration=60, samples=4, finetune_steps=40,
               dpo_steps=10)


@pytest.fixture(scope="module")
def tiny_run():
    sets = lm.problem_sets(TINY)
    start, losses = lm.seed_model(TINY, sets)
    return sets, start, losses


def test_every_method_runs_and_a_verified_iteration_keeps_the_seed_set(tiny_run):
    sets, start, losses = tiny_run
    assert losses[-1] < 0.5 * losses[0]
    curves = {name: lm.run_method(name, start, TINY, sets, progress=False) for name in lm.METHODS}
    for name, rows in curves.items():
        assert [r["iteration"] for r in rows] == [0, 1], name
        assert rows[1]["sampled"] == TINY.problems_per_iteration * TINY.samples
        assert 0 <= rows[1]["pass@1"] <= rows[1][f"pass@{TINY.samples}"] <= 1
    verified, unfiltered = curves["verified"][1], curves["unfiltered"][1]
    assert verified["label_precision"] == 1.0 and 0 < verified["kept"] <= TINY.problems_per_iteration
    assert unfiltered["kept"] == TINY.samples_per_iteration and unfiltered["label_precision"] < 1.0
    # Fine-tuning on verified answers mixed with the seed set must not make the model forget the seed set
    assert verified["seed_accuracy"] >= curves["verified"][0]["seed_accuracy"] - 0.02
    # Same setting, same curves
    assert lm.run_method("verified", start, TINY, sets, progress=False) == curves["verified"]


def test_bad_method_and_setting_names_are_rejected(tiny_run):
    sets, start, _ = tiny_run
    with pytest.raises(ValueError, match="unknown method"):
        lm.run_method("rlhf", start, TINY, sets)
    with pytest.raises(ValueError, match="samples"):
        replace(TINY, samples=1)
