"""Self-training a small language model on a task with a checker (notebook 12), as readable loops.

A :class:`~sslcookbook.models.char_lm.CharLM` first learns addition from a small labelled seed set
(:func:`supervised_fine_tune`). Then each method spends the same compute, ``problems_per_iteration × k``
sampled answers per iteration on prompts from the unlabelled pool, to teach itself:

- ``unfiltered``: every sampled answer becomes a label (no filter: errors are learned as readily as
  successes; the "model collapse" story, Shumailov et al. 2024).
- ``verified``: expert iteration with a verifier (STaR, Zelikman et al. 2022; ReST-EM, Singh et al. 2023):
  keep only the answers the checker accepts, fine-tune, repeat.
- ``majority``: label-free: the most frequent of the k answers is the pseudo-label, kept when at least
  ``majority_share`` of the samples agree (self-consistency, Wang et al. 2023, as the label; Huang et al.
  2022, "Large Language Models Can Self-Improve").
- ``grpo`` / ``grpo_majority``: GRPO (Shao et al. 2024) with the checker's reward, or label-free with the
  reward "agrees with the majority answer" (as in test-time RL, Zuo et al. 2025).
- ``dpo``: DPO (Rafailov et al. 2023) on self-generated (verified, rejected) pairs, the reference being
  the model at the start of each iteration, with a likelihood term on the chosen answers (iterative
  DPO as in Pang et al. 2024; ``dpo_nll_weight=0`` for plain DPO).

Every iteration is scored on the held-out test problems: greedy accuracy, pass@1 and pass@k of k samples.
Everything is seeded: the same setting gives the same curves.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from dataclasses import asdict, dataclass, replace

import torch
from tqdm.auto import tqdm

from ..data.arithmetic import EOS, PAD, VOCAB, AdditionTask, Problem, ProblemSets, make_problem_sets
from ..losses.preference import dpo_loss, group_relative_advantages, grpo_loss
from ..models.char_lm import CharLM, completion_log_probs, completion_mask, generate, token_log_probs
from ..profiles import notebook_profile

METHODS = ("unfiltered", "verified", "majority", "grpo", "grpo_majority", "dpo")
LABEL_FREE = ("unfiltered", "majority", "grpo_majority")  # never call the checker on the pool


@dataclass(frozen=True)
class LMSelfTrainingSetting:
    """Everything one self-training experiment needs; :data:`SETTINGS` holds one per profile."""

    max_digits: int = 3
    seed_size: int = 500  # labelled problems
    pool_size: int = 4000  # unlabelled prompts
    test_size: int = 500
    width: int = 64
    depth: int = 2
    heads: int = 4
    lr: float = 3e-3
    batch_size: int = 64
    sft_steps: int = 600  # supervised fine-tuning on the seed set
    iterations: int = 4
    problems_per_iteration: int = 500
    samples: int = 8  # k answers sampled per problem (also the k of pass@k)
    temperature: float = 1.0
    finetune_steps: int = 200  # per iteration, for unfiltered / verified / majority
    majority_share: float = 0.5
    grpo_epochs: int = 2  # passes over an iteration's samples
    grpo_lr: float = 3e-4
    clip_eps: float = 0.2
    kl_beta: float = 0.04
    dpo_beta: float = 0.1
    dpo_nll_weight: float = 1.0  # + this × the chosen answers' per-token NLL (Pang et al. 2024); 0: plain DPO
    dpo_steps: int = 100
    dpo_lr: float = 3e-4
    seed: int = 0

    def __post_init__(self):
        if self.samples < 2:
            raise ValueError(f"samples must be ≥ 2 (k answers per problem), got {self.samples}")
        if self.problems_per_iteration > self.pool_size:
            raise ValueError(f"problems_per_iteration {self.problems_per_iteration} exceeds pool_size "
                             f"{self.pool_size}")

    @property
    def task(self) -> AdditionTask:
        return AdditionTask(self.max_digits)

    @property
    def samples_per_iteration(self) -> int:
        """The compute unit every method spends per iteration: sampled answers."""
        return self.problems_per_iteration * self.samples


# smoke: CI, seconds (the curves mean little); cpu: the notebook's default, a few minutes on a 2-core laptop;
# gpu: longer and larger, not measured (no GPU here).
SETTINGS = {
    "smoke": LMSelfTrainingSetting(width=32, sft_steps=400, pool_size=1000, test_size=200, iterations=2,
                                   problems_per_iteration=150, samples=4, finetune_steps=60, dpo_steps=30),
    "cpu": LMSelfTrainingSetting(),
    "gpu": LMSelfTrainingSetting(seed_size=200, pool_size=20000, test_size=2000, width=128, depth=4,
                                 iterations=8, problems_per_iteration=2000, samples=16, finetune_steps=400,
                                 dpo_steps=200),
}


def lm_setting(profile: str | None = None, **overrides) -> LMSelfTrainingSetting:
    """The active profile's setting (:func:`sslcookbook.profiles.notebook_profile`), with ``overrides``."""
    return replace(SETTINGS[notebook_profile(profile)], **overrides)


def build_model(setting: LMSelfTrainingSetting) -> CharLM:
    task = setting.task
    return CharLM(len(VOCAB), task.prompt_length + task.completion_length, setting.width, setting.depth,
                  setting.heads)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def supervised_fine_tune(model, task: AdditionTask, problems: list[Problem], answers: list[str], steps: int,
                         batch_size: int = 64, lr: float = 1e-3, seed: int = 0, desc: str | None = None,
                         progress: bool = False) -> list[float]:
    """Next-token cross-entropy on the answers' tokens (and the end token) of (prompt, answer) pairs.

    ``steps`` AdamW steps on batches drawn with replacement with ``seed``; returns the losses.
    """
    if len(problems) != len(answers) or not problems:
        raise ValueError(f"need as many answers as problems, at least one: got {len(problems)} problems, "
                         f"{len(answers)} answers")
    device = _device(model)
    prompts = task.encode_prompts(problems).to(device)
    completions = task.encode_completions(answers).to(device)
    mask = completion_mask(completions, EOS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        batch = torch.randint(len(problems), (batch_size,), generator=generator).to(device)
        log_probs = token_log_probs(model, prompts[batch], completions[batch])
        loss = -(log_probs * mask[batch]).sum() / mask[batch].sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def sample_answers(model, task: AdditionTask, problems: list[Problem], k: int, temperature: float,
                   generator: torch.Generator) -> list[list[str]]:
    """k sampled answer texts per problem (P lists of k), from one seeded generator.

    A sample that never produced the end token is returned whole (one character longer than any answer,
    so the verifier rejects it); :func:`trainable` cuts it to fit when it is used as a label."""
    prompts = task.encode_prompts(problems).to(_device(model)).repeat_interleave(k, dim=0)
    completions = generate(model, prompts, task.completion_length, EOS, PAD, temperature, generator)
    texts = [_decode_row(row) for row in completions.cpu().tolist()]
    return [texts[i * k : (i + 1) * k] for i in range(len(problems))]


def trainable(task: AdditionTask, text: str) -> str:
    """``text`` cut to the longest answer a completion holds (a sample that never ended is one too long)."""
    return text[: task.completion_length - 1]


def _decode_row(row: list[int]) -> str:
    out = []
    for i in row:
        if i in (EOS, PAD):  # PAD only when a sample never ended; then the answer is what came before
            break
        out.append(VOCAB[i])
    return "".join(out)


def greedy_accuracy(model, task: AdditionTask, problems: list[Problem]) -> float:
    """The share of problems whose greedy (temperature 0) answer the checker accepts."""
    answers = sample_answers(model, task, problems, 1, 0.0, None)
    return sum(task.check(p, a[0]) for p, a in zip(problems, answers)) / len(problems)


def evaluate(model, task: AdditionTask, problems: list[Problem], k: int, temperature: float = 1.0,
             seed: int = 0) -> dict:
    """Greedy accuracy, pass@1 (the mean share of correct samples) and pass@k (at least one of k correct)."""
    generator = torch.Generator(_device(model)).manual_seed(seed)
    samples = sample_answers(model, task, problems, k, temperature, generator)
    correct = [[task.check(p, a) for a in answers] for p, answers in zip(problems, samples)]
    return {
        "accuracy": greedy_accuracy(model, task, problems),
        "pass@1": sum(sum(c) / k for c in correct) / len(problems),
        f"pass@{k}": sum(any(c) for c in correct) / len(problems),
    }


def majority_answer(answers: list[str]) -> tuple[str, float]:
    """The most frequent answer (ties: the first sampled) and its share of the samples."""
    answer, count = Counter(answers).most_common(1)[0]
    return answer, count / len(answers)


def seed_model(setting: LMSelfTrainingSetting, sets: ProblemSets | None = None, device=None,
               progress: bool = False) -> tuple[CharLM, list[float]]:
    """The baseline every method starts from: a fresh CharLM fine-tuned on the labelled seed set only."""
    task = setting.task
    sets = sets or problem_sets(setting)
    torch.manual_seed(setting.seed)
    model = build_model(setting).to(device or "cpu")
    losses = supervised_fine_tune(model, task, sets.seed, [task.answer(p) for p in sets.seed],
                                  setting.sft_steps, setting.batch_size, setting.lr, setting.seed,
                                  desc="seed SFT", progress=progress)
    return model, losses


def problem_sets(setting: LMSelfTrainingSetting) -> ProblemSets:
    return make_problem_sets(setting.task, setting.seed_size, setting.pool_size, setting.test_size,
                             setting.seed)


def _row(model, setting, sets, iteration: int, extra: dict | None = None) -> dict:
    task = setting.task
    scores = evaluate(model, task, sets.test, setting.samples, setting.temperature, seed=setting.seed + 1)
    return {"iteration": iteration, "sampled": iteration * setting.samples_per_iteration, **scores,
            "seed_accuracy": greedy_accuracy(model, task, sets.seed), **(extra or {})}


def _iteration_problems(setting, sets, rng: random.Random) -> list[Problem]:
    return rng.sample(sets.pool, setting.problems_per_iteration)


def self_train(model, setting: LMSelfTrainingSetting, sets: ProblemSets, filter: str = "verified",
               progress: bool = True) -> list[dict]:
    """Sample k answers per pool problem, keep them by ``filter``, fine-tune on them and the seed set, repeat.

    ``filter``: ``"none"`` (every sample is a label), ``"verified"`` (the checker's accepted answer, once
    per problem solved at least once) or ``"majority"`` (the majority answer, once per problem where at
    least ``majority_share`` of the samples agree; no checker). Returns one row per iteration (row 0: the
    starting model) with the test scores, the number of kept labels and the share of them that is correct
    (computed with the checker for the report; the label-free filters never see it).
    """
    if filter not in ("none", "verified", "majority"):
        raise ValueError(f"filter must be 'none', 'verified' or 'majority', got {filter!r}")
    task, rng = setting.task, random.Random(setting.seed)
    generator = torch.Generator(_device(model)).manual_seed(setting.seed)
    history = [_row(model, setting, sets, 0)]
    seed_answers = [task.answer(p) for p in sets.seed]
    bar = tqdm(range(1, setting.iterations + 1), desc=f"self-training ({filter})", disable=not progress)
    for iteration in bar:
        problems = _iteration_problems(setting, sets, rng)
        samples = sample_answers(model, task, problems, setting.samples, setting.temperature, generator)
        kept: list[tuple[Problem, str]] = []
        for problem, answers in zip(problems, samples):
            if filter == "none":
                kept += [(problem, trainable(task, a)) for a in answers]
            elif filter == "verified":
                solved = any(task.check(problem, a) for a in answers)
                kept += [(problem, task.answer(problem))] if solved else []
            else:
                answer, share = majority_answer(answers)
                agreed = share >= setting.majority_share and answer
                kept += [(problem, trainable(task, answer))] if agreed else []
        precision = sum(task.check(p, a) for p, a in kept) / max(len(kept), 1)
        supervised_fine_tune(model, task, sets.seed + [p for p, _ in kept],
                             seed_answers + [a for _, a in kept], setting.finetune_steps, setting.batch_size,
                             setting.lr, setting.seed + iteration)
        history.append(_row(model, setting, sets, iteration,
                            {"kept": len(kept), "label_precision": precision}))
        bar.set_postfix(accuracy=history[-1]["accuracy"], kept=len(kept))
    return history


def grpo(model, setting: LMSelfTrainingSetting, sets: ProblemSets, reward: str = "checker",
         progress: bool = True) -> list[dict]:
    """GRPO: per iteration, k samples per pool problem, rewards, group-relative advantages, then
    ``grpo_epochs`` passes of clipped policy-gradient steps with a k3 KL term to the starting model.

    ``reward``: ``"checker"`` (1 if the checker accepts the answer) or ``"majority"`` (label-free: 1 if the
    answer is the group's majority answer).
    """
    if reward not in ("checker", "majority"):
        raise ValueError(f"reward must be 'checker' or 'majority', got {reward!r}")
    task, rng, device = setting.task, random.Random(setting.seed), _device(model)
    generator = torch.Generator(device).manual_seed(setting.seed)
    batches = torch.Generator().manual_seed(setting.seed)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=setting.grpo_lr, weight_decay=0.0)
    history = [_row(model, setting, sets, 0)]
    k = setting.samples
    bar = tqdm(range(1, setting.iterations + 1), desc=f"GRPO ({reward})", disable=not progress)
    for iteration in bar:
        problems = _iteration_problems(setting, sets, rng)
        prompts = task.encode_prompts(problems).to(device).repeat_interleave(k, dim=0)
        completions = generate(model, prompts, task.completion_length, EOS, PAD, setting.temperature,
                               generator)
        texts = [_decode_row(row) for row in completions.cpu().tolist()]
        if reward == "checker":
            rewards = [float(task.check(problems[i // k], t)) for i, t in enumerate(texts)]
        else:
            majorities = [majority_answer(texts[i * k : (i + 1) * k])[0] for i in range(len(problems))]
            rewards = [float(t == majorities[i // k]) for i, t in enumerate(texts)]
        advantages = group_relative_advantages(torch.tensor(rewards, device=device).view(-1, k)).flatten()
        mask = completion_mask(completions, EOS)
        with torch.no_grad():
            old_log_probs = token_log_probs(model, prompts, completions)
            reference_log_probs = token_log_probs(reference, prompts, completions)
        model.train()
        for _ in range(setting.grpo_epochs):
            order = torch.randperm(len(texts), generator=batches).to(device)
            for batch in order.split(setting.batch_size * 4):
                log_probs = token_log_probs(model, prompts[batch], completions[batch])
                loss = grpo_loss(log_probs, old_log_probs[batch], reference_log_probs[batch],
                                 advantages[batch], mask[batch], setting.clip_eps, setting.kl_beta)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        correct = sum(task.check(problems[i // k], t) for i, t in enumerate(texts)) / len(texts)
        history.append(_row(model, setting, sets, iteration, {"mean_reward": sum(rewards) / len(rewards),
                                                              "sample_accuracy": correct}))
        bar.set_postfix(accuracy=history[-1]["accuracy"], reward=history[-1]["mean_reward"])
    return history


def preference_pairs(task: AdditionTask, problems: list[Problem], samples: list[list[str]]):
    """(problem, chosen, rejected) for each problem with at least one verified and one rejected answer:
    the correct answer against the most frequent wrong one."""
    pairs = []
    for problem, answers in zip(problems, samples):
        right = task.answer(problem)
        wrong = [trainable(task, a) for a in answers if not task.check(problem, a)]
        wrong = [a for a in wrong if a != right]  # a never-ended sample may start with the right answer
        if wrong and any(task.check(problem, a) for a in answers):
            pairs.append((problem, right, Counter(wrong).most_common(1)[0][0]))
    return pairs


def dpo(model, setting: LMSelfTrainingSetting, sets: ProblemSets, progress: bool = True) -> list[dict]:
    """Iterative DPO: per iteration, k samples per pool problem, (verified, rejected) pairs, ``dpo_steps``
    steps of :func:`~sslcookbook.losses.preference.dpo_loss` against the model frozen at the iteration's
    start, plus ``dpo_nll_weight`` × the chosen answers' mean per-token negative log-likelihood.

    The likelihood term is Pang et al.'s (2024, "Iterative Reasoning Preference Optimization"): DPO alone
    only widens the margin, and can do so by lowering the chosen answers' probability too (notebook 12's
    exercise 3 runs it with ``dpo_nll_weight=0``)."""
    task, rng, device = setting.task, random.Random(setting.seed), _device(model)
    generator = torch.Generator(device).manual_seed(setting.seed)
    batches = torch.Generator().manual_seed(setting.seed)
    history = [_row(model, setting, sets, 0)]
    bar = tqdm(range(1, setting.iterations + 1), desc="DPO", disable=not progress)
    for iteration in bar:
        problems = _iteration_problems(setting, sets, rng)
        samples = sample_answers(model, task, problems, setting.samples, setting.temperature, generator)
        pairs = preference_pairs(task, problems, samples)
        if pairs:
            prompts = task.encode_prompts([p for p, _, _ in pairs]).to(device)
            chosen = task.encode_completions([c for _, c, _ in pairs]).to(device)
            rejected = task.encode_completions([r for _, _, r in pairs]).to(device)
            reference = copy.deepcopy(model).eval().requires_grad_(False)
            with torch.no_grad():
                reference_chosen = completion_log_probs(reference, prompts, chosen, EOS)
                reference_rejected = completion_log_probs(reference, prompts, rejected, EOS)
            chosen_lengths = completion_mask(chosen, EOS).sum(dim=1)
            optimizer = torch.optim.AdamW(model.parameters(), lr=setting.dpo_lr, weight_decay=0.0)
            model.train()
            for _ in range(setting.dpo_steps):
                batch = torch.randint(len(pairs), (setting.batch_size,), generator=batches).to(device)
                policy_chosen = completion_log_probs(model, prompts[batch], chosen[batch], EOS)
                policy_rejected = completion_log_probs(model, prompts[batch], rejected[batch], EOS)
                loss = dpo_loss(policy_chosen, policy_rejected, reference_chosen[batch],
                                reference_rejected[batch], setting.dpo_beta)
                if setting.dpo_nll_weight:
                    nll = -(policy_chosen / chosen_lengths[batch]).mean()
                    loss = loss + setting.dpo_nll_weight * nll
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        history.append(_row(model, setting, sets, iteration, {"pairs": len(pairs)}))
        bar.set_postfix(accuracy=history[-1]["accuracy"], pairs=len(pairs))
    return history


def run_method(name: str, start_model, setting: LMSelfTrainingSetting, sets: ProblemSets,
               progress: bool = True) -> list[dict]:
    """Run method ``name`` (one of :data:`METHODS`) from a copy of ``start_model``; its per-iteration rows."""
    model = copy.deepcopy(start_model)
    torch.manual_seed(setting.seed)
    if name == "unfiltered":
        return self_train(model, setting, sets, "none", progress)
    if name in ("verified", "majority"):
        return self_train(model, setting, sets, name, progress)
    if name in ("grpo", "grpo_majority"):
        return grpo(model, setting, sets, "checker" if name == "grpo" else "majority", progress)
    if name == "dpo":
        return dpo(model, setting, sets, progress)
    raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")


def run_all(setting: LMSelfTrainingSetting, methods=METHODS, device=None, progress: bool = True) -> dict:
    """The seed model, then every method from it: {"setting", "seed_sft_losses", "curves": {name: rows}}."""
    sets = problem_sets(setting)
    start, losses = seed_model(setting, sets, device, progress)
    curves = {name: run_method(name, start, setting, sets, progress) for name in methods}
    return {"setting": asdict(setting), "seed_sft_losses": losses, "curves": curves}
