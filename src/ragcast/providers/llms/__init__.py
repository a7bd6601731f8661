"""LLM backends behind one contract (:class:`~ragcast.providers.llms.base.Llm`).

``openai`` speaks the OpenAI chat-completions API (OpenAI itself, vLLM, llama.cpp's
server, Ollama, LM Studio...). None is configured by default: answers are then extractive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragcast.errors import ConfigurationError
from ragcast.providers.llms.base import Llm, LlmUnavailable, Message

if TYPE_CHECKING:
    from ragcast.settings import Settings

__all__ = ["Llm", "LlmUnavailable", "Message", "llm_from_settings"]


def llm_from_settings(settings: Settings, *, check: bool = True) -> Llm | None:
    """The LLM the settings name (``RAGCAST_LLM_BASE_URL``), or None for none.

    With ``check`` a base URL that points nowhere (no such host, nothing listening) is
    refused with :class:`~ragcast.errors.ConfigurationError` naming the setting, so a
    server with a wrong LLM setting does not start rather than failing every answer.
    """
    if not settings.llm_base_url:
        return None
    from ragcast.providers.embedders.http import RetryPolicy
    from ragcast.providers.llms.openai import OpenAiConfig, OpenAiLlm, unreachable

    config = OpenAiConfig(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
        retry=RetryPolicy(
            attempts=settings.llm_max_attempts,
            backoff_s=settings.llm_backoff_s,
            max_backoff_s=settings.llm_max_backoff_s,
        ),
        context_tokens=settings.llm_context_tokens,
    )
    if check:
        why = unreachable(config)
        if why is not None:
            raise ConfigurationError(
                f"RAGCAST_LLM_BASE_URL={settings.llm_base_url!r} cannot be reached ({why}); "
                "start the LLM server, fix the setting, or unset it for extractive answers"
            )
    return OpenAiLlm(config)
