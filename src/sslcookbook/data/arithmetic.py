"""Multi-digit addition as a language-model task with a programmatic checker (notebook 12).

A problem is two integers with 1 to ``max_digits`` digits each; its prompt is ``"123+045="`` and its answer
the digits of the sum, written **least significant digit first** by default (``"861"`` for 168): a small
causal transformer then produces each digit after the two digits it depends on and the carry, which is
what makes addition learnable from a few hundred examples (Lee et al. 2023, "Teaching Arithmetic to Small
Transformers", arXiv:2307.03381). ``reverse_answer=False`` writes the sum as usual.

Sequences have one fixed layout so a batch needs no attention mask: both operands are written with
``max_digits`` digits (``"123+045="``), so every digit of the prompt has its own position, and the
completion is the answer, an end token and right padding up to ``completion_length``.

:func:`make_problem_sets` draws the three disjoint, seeded sets of a self-training experiment: a small
labelled ``seed`` set, an unlabelled ``pool`` of prompts, and a held-out ``test`` set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

PAD, EOS = 0, 1
CHARACTERS = "0123456789+="
VOCAB = ("_", ".") + tuple(CHARACTERS)  # "_" padding, "." end of answer; printed as such
_INDEX = {c: i for i, c in enumerate(VOCAB)}


def encode(text: str) -> list[int]:
    """The token ids of ``text`` (characters of ``CHARACTERS`` only)."""
    bad = sorted(set(text) - set(CHARACTERS))
    if bad:
        raise ValueError(f"cannot encode {bad} in {text!r}: the vocabulary is {CHARACTERS!r}")
    return [_INDEX[c] for c in text]


def decode(ids: Sequence[int] | torch.Tensor) -> str:
    """The text of a completion's ids: stops at the first end token, skips padding."""
    out = []
    for i in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
        if i == EOS:
            break
        if i != PAD:
            out.append(VOCAB[i])
    return "".join(out)


@dataclass(frozen=True)
class Problem:
    """One addition problem ``a + b``."""

    a: int
    b: int

    def prompt(self, digits: int) -> str:
        """``"a+b="`` with each operand zero-padded to ``digits`` digits."""
        return f"{self.a:0{digits}d}+{self.b:0{digits}d}="

    @property
    def result(self) -> int:
        return self.a + self.b


@dataclass(frozen=True)
class AdditionTask:
    """Addition of two numbers of 1 to ``max_digits`` digits; the answer reversed unless told otherwise."""

    max_digits: int = 3
    reverse_answer: bool = True

    def __post_init__(self):
        if not isinstance(self.max_digits, int) or not 1 <= self.max_digits <= 9:
            raise ValueError(f"max_digits must be an integer from 1 to 9, got {self.max_digits!r}")

    @property
    def prompt_length(self) -> int:
        return 2 * self.max_digits + 2  # digits, "+", digits, "="

    @property
    def completion_length(self) -> int:
        return self.max_digits + 2  # the sum has at most max_digits + 1 digits, then the end token

    def answer(self, problem: Problem) -> str:
        """The correct answer text (without the end token)."""
        digits = str(problem.result)
        return digits[::-1] if self.reverse_answer else digits

    def read_answer(self, text: str) -> int | None:
        """The integer an answer text states, or None when it is not a well-formed number."""
        if not text or not text.isdigit():
            return None
        digits = text[::-1] if self.reverse_answer else text
        if len(digits) > 1 and digits[0] == "0":  # a leading zero is not how the answer is written
            return None
        return int(digits)

    def check(self, problem: Problem, text: str) -> bool:
        """The verifier: whether ``text`` is exactly the correct answer to ``problem``."""
        return text == self.answer(problem)

    def prompt(self, problem: Problem) -> str:
        """The prompt text, ``"123+045="``."""
        return problem.prompt(self.max_digits)

    def encode_prompts(self, problems: Sequence[Problem]) -> torch.Tensor:
        """Prompt ids, int64 N × ``prompt_length``."""
        rows = [encode(self.prompt(p)) for p in problems]
        if any(len(r) != self.prompt_length for r in rows):
            raise ValueError(f"a prompt is longer than {self.prompt_length} characters: more than "
                             f"{self.max_digits} digits in an operand")
        return torch.tensor(rows, dtype=torch.long)

    def encode_completions(self, texts: Sequence[str]) -> torch.Tensor:
        """Completion ids: the text, the end token, right padding; int64 N × ``completion_length``."""
        rows = [encode(t) + [EOS] for t in texts]
        if any(len(r) > self.completion_length for r in rows):
            raise ValueError(f"a completion is longer than {self.completion_length - 1} characters")
        return torch.tensor([r + [PAD] * (self.completion_length - len(r)) for r in rows], dtype=torch.long)

    def random_problems(self, n: int, generator: torch.Generator) -> list[Problem]:
        """``n`` problems; each operand's number of digits is uniform in 1..max_digits, then its value."""
        digits = torch.randint(1, self.max_digits + 1, (n, 2), generator=generator)
        low = torch.where(digits == 1, torch.zeros_like(digits), 10 ** (digits - 1))
        span = 10**digits - low
        values = low + (torch.rand(n, 2, generator=generator, dtype=torch.float64) * span).long()
        return [Problem(int(a), int(b)) for a, b in values.tolist()]


@dataclass(frozen=True)
class ProblemSets:
    """Disjoint seed (labelled), pool (prompts only: the answers are for scoring, never for training)
    and test problems."""

    seed: list[Problem]
    pool: list[Problem]
    test: list[Problem]


def make_problem_sets(task: AdditionTask, seed_size: int, pool_size: int, test_size: int,
                      seed: int = 0) -> ProblemSets:
    """Draw ``seed_size + pool_size + test_size`` distinct problems with ``seed`` and split them."""
    sizes = {"seed_size": seed_size, "pool_size": pool_size, "test_size": test_size}
    for name, size in sizes.items():
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be a positive integer, got {size!r}")
    total = seed_size + pool_size + test_size
    if total > 0.5 * (10**task.max_digits) ** 2:
        raise ValueError(f"{total} distinct problems is too many for {task.max_digits}-digit operands; "
                         "raise max_digits or ask for fewer problems")
    generator = torch.Generator().manual_seed(seed)
    chosen: dict[Problem, None] = {}  # insertion-ordered set: the draw is reproducible
    while len(chosen) < total:
        for problem in task.random_problems(total, generator):
            if len(chosen) < total:
                chosen.setdefault(problem)
    order = torch.randperm(total, generator=generator).tolist()  # else the first draws' easy sums go first
    drawn = list(chosen)
    problems = [drawn[i] for i in order]
    return ProblemSets(problems[:seed_size], problems[seed_size : seed_size + pool_size],
                       problems[seed_size + pool_size :])
