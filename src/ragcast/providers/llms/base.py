"""The one contract every LLM backend keeps: chat messages in, text (or its pieces) out.

A backend answers :meth:`Llm.complete` with the whole reply and :meth:`Llm.stream` with
its pieces as they come. One that cannot be reached, or that keeps failing after its
retries, raises :class:`LlmUnavailable` (the API answers ``503 upstream_unavailable``, or
an extractive answer where the request asked for ``fallback``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ragcast.errors import UpstreamUnavailableError

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    content: str


class LlmUnavailable(UpstreamUnavailableError):
    """The LLM did not answer (down, timed out, or failing after its retries)."""


class Llm(ABC):
    """A chat model behind one contract; ``name`` is the model the answers report."""

    name: str = ""
    #: tokens of context the model takes (prompt and answer together)
    context_tokens: int = 8192

    @abstractmethod
    def complete(self, messages: list[Message], *, max_tokens: int = 512) -> str:
        """The model's whole reply to ``messages``."""

    @abstractmethod
    def stream(self, messages: list[Message], *, max_tokens: int = 512) -> Iterator[str]:
        """The model's reply to ``messages``, in pieces as they are made."""

    def close(self) -> None:  # noqa: B027 - optional for backends that hold nothing
        """Release what the backend holds (connections, a loaded model)."""
