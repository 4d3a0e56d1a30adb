"""A word-level tokenizer that needs no download: its vocabulary is built from the captions themselves.

Text is lower-cased and split into runs of letters and digits (punctuation is dropped). Token ids:
0 ``<pad>``, 1 ``<sot>`` (start of text), 2 ``<eot>`` (end of text), 3 ``<unk>`` (a word outside the
vocabulary), then the words in order of first appearance. A caption of ``length`` tokens is
``<sot> w1 … wk <eot> <pad> …``; a longer one is cut so that ``<eot>`` stays (the text encoder pools there).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch

PAD, SOT, EOT, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<sot>", "<eot>", "<unk>")
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (runs of letters and digits)."""
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Maps captions to fixed-length rows of token ids and back; see the module docstring."""

    def __init__(self, vocabulary: Sequence[str]):
        vocabulary = list(vocabulary)
        if list(vocabulary[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
            raise ValueError(
                f"a vocabulary starts with the special tokens {SPECIAL_TOKENS}: build it with from_texts"
            )
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("the vocabulary holds a word twice")
        self.vocabulary = vocabulary
        self._ids = {word: i for i, word in enumerate(vocabulary)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> WordTokenizer:
        """A tokenizer whose vocabulary is every word of ``texts``, in order of first appearance."""
        vocabulary = list(SPECIAL_TOKENS)
        seen = set(vocabulary)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"captions must be str, got {type(text).__name__}")
            for word in words(text):
                if word not in seen:
                    seen.add(word)
                    vocabulary.append(word)
        return cls(vocabulary)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def __repr__(self) -> str:
        return f"WordTokenizer({len(self)} tokens)"

    def encode(self, texts: str | Sequence[str], length: int) -> torch.Tensor:
        """Token ids, int64 of shape (len(texts), length) (or (length,) for one str), padded with 0."""
        single = isinstance(texts, str)
        if isinstance(length, bool) or not isinstance(length, int) or length < 2:
            raise ValueError(f"length must be an int >= 2 (room for <sot> and <eot>), got {length!r}")
        rows = [texts] if single else list(texts)
        out = torch.full((len(rows), length), PAD, dtype=torch.int64)
        for r, text in enumerate(rows):
            if not isinstance(text, str):
                raise TypeError(f"captions must be str, got {type(text).__name__} at position {r}")
            ids = [SOT, *(self._ids.get(word, UNK) for word in words(text))][: length - 1] + [EOT]
            out[r, : len(ids)] = torch.tensor(ids)
        return out[0] if single else out

    def decode(self, ids: torch.Tensor) -> str:
        """The words of one row of token ids, without the special tokens."""
        return " ".join(self.vocabulary[i] for i in ids.tolist() if i >= len(SPECIAL_TOKENS))

    def state_dict(self) -> dict:
        return {"vocabulary": list(self.vocabulary)}

    @classmethod
    def from_state_dict(cls, state: dict) -> WordTokenizer:
        return cls(state["vocabulary"])
