"""``openai``: chat completions from OpenAI or any OpenAI-compatible server (vLLM, Ollama, ...).

The key comes from ``api_key`` (``--api-key``) or ``OPENAI_API_KEY`` and is never written anywhere:
not to the output file, not to a log line, not into an error message (server messages are
scrubbed). A local server (``--base-url`` on a loopback or private address, ``localhost``, a
``.local`` name) needs no key: a placeholder is sent. The token usage each response reports is
attached to the returned text (:class:`DescribedText`) and summed by the engine. Requests
have a timeout; 429, 5xx, timeouts and connection failures are retried with exponential
backoff (jittered, ``Retry-After`` honoured); 401/403 and other 4xx fail at once with one line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import re
from collections.abc import Callable
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from textclf.descriptions.request import DEFAULT_LLM_MODEL as DEFAULT_MODEL
from textclf.errors import TextclfError
from textclf.plugin_api import Describer, DescriberPlugin

DEFAULT_TEMPERATURE = 0.7
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_BACKOFF_BASE = 1.0
MAX_BACKOFF = 30.0
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{4,}|Bearer\s+\S+)")
NO_KEY = "no-key-needed"  # sent to a local server when no key is given (the client needs a value)


class DescribedText(str):
    """A description, with the token usage of the response(s) that produced it (``usage``)."""

    usage: Optional[dict] = None


def is_local_url(url: Optional[str]) -> bool:
    """Whether ``url`` points at this machine or the local network (where servers rarely check
    keys)."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host == "localhost" or host.endswith((".localhost", ".local")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified


def _usage_of(resp) -> dict:
    usage = getattr(resp, "usage", None)
    out = {"requests": 1}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(usage, key, None) if usage is not None else None
        if isinstance(value, int):
            out[key] = value
    return out


def default_model() -> str:
    """``$TEXTCLF_LLM_MODEL`` or :data:`DEFAULT_MODEL`."""
    return os.environ.get("TEXTCLF_LLM_MODEL") or DEFAULT_MODEL


def public_url(url: str) -> str:
    """``url`` without user info or query (where credentials could hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def scrub(text: str, secret: Optional[str]) -> str:
    """``text`` on one line, without ``secret`` or anything that looks like a key."""
    text = str(text)
    if secret:
        text = text.replace(secret, "***")
    text = _KEYLIKE.sub("***", text)  # also masked echoes such as sk-proj-****abcd
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _server_message(exc, secret: Optional[str]) -> str:
    body = getattr(exc, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
    if not msg:
        msg = getattr(exc, "message", None) or str(exc)
    return scrub(msg, secret)


def _error_code(exc) -> Optional[str]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            code = err.get("code") or err.get("type")
            return str(code) if code else None
    return None


def _retry_after(exc) -> Optional[float]:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


class OpenAIDescriber(Describer):
    """Asynchronous describer over ``openai.AsyncOpenAI`` (one request per sample)."""

    def __init__(
        self,
        model: Optional[str] = None,
        base_url: Optional[str] = None,
        temperature: Optional[float] = None,
        seed: Optional[int] = None,
        timeout: Optional[float] = None,
        max_retries: Optional[int] = None,
        backoff_base: Optional[float] = None,
        concurrency: int = 8,
        on_retry: Optional[Callable[..., None]] = None,
        api_key: Optional[str] = None,
        **_options,
    ):
        key = (api_key or os.environ.get("OPENAI_API_KEY", "")).strip()
        if not key and is_local_url(base_url):
            key = NO_KEY
        if not key:
            raise TextclfError(
                "describer 'openai' needs an API key: set OPENAI_API_KEY or pass --api-key "
                "(a local --base-url such as http://localhost:8000/v1 needs none), or use "
                "--describer builtin|classname|random-words|file:PATH"
            )
        import openai

        self.model = model or default_model()
        self.temperature = DEFAULT_TEMPERATURE if temperature is None else float(temperature)
        self.seed = seed
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.max_retries = DEFAULT_MAX_RETRIES if max_retries is None else int(max_retries)
        env_base = os.environ.get("TEXTCLF_LLM_BACKOFF_BASE")
        if backoff_base is None:
            backoff_base = float(env_base) if env_base else DEFAULT_BACKOFF_BASE
        self.backoff_base = float(backoff_base)
        self.on_retry = on_retry
        self._secret = key if key != NO_KEY else None
        self._rng = random.Random()
        try:
            self._client = openai.AsyncOpenAI(
                api_key=key, base_url=base_url or None, timeout=self.timeout, max_retries=0
            )
        except Exception as exc:  # e.g. a malformed base URL
            raise TextclfError(
                f"cannot create the OpenAI client for --base-url {base_url!r}: {scrub(exc, key)}"
            ) from None
        self.base_url = public_url(str(self._client.base_url)).rstrip("/")

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIDescriber(model={self.model!r}, base_url={self.base_url!r})"

    def provenance(self) -> dict:
        """Provenance fields for the output file (never the key)."""
        return {
            "describer": "openai",
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "seed": self.seed,
            "label": f"openai {self.model}",
        }

    def request(self, class_name: str, prompt, sample_index: int) -> dict:
        """The chat-completions arguments for one description."""
        messages = []
        if prompt.system:
            messages.append({"role": "system", "content": prompt.system})
        messages.append({"role": "user", "content": prompt.render(class_name)})
        kwargs = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": prompt.max_tokens,
        }
        if self.seed is not None:
            kwargs["seed"] = int(self.seed) + int(sample_index)
        return kwargs

    def _delay(self, attempt: int, hint: Optional[float]) -> float:
        delay = self.backoff_base * (2 ** (attempt - 1)) * (0.5 + 0.5 * self._rng.random())
        if hint is not None:
            delay = max(delay, hint)
        return min(delay, MAX_BACKOFF)

    async def describe(self, class_name: str, prompt, sample_index: int = 0) -> str:
        """One description of ``class_name``; retries transient failures, raises TextclfError."""
        import openai

        kwargs = self.request(class_name, prompt, sample_index)
        where = f"{self.base_url}"
        attempt = 0
        spent: dict = {}  # tokens of every response for this description, empty replies included
        while True:
            hint = None
            try:
                resp = await self._client.chat.completions.create(**kwargs)
                for key, value in _usage_of(resp).items():
                    spent[key] = spent.get(key, 0) + value
                choices = getattr(resp, "choices", None) or []
                text = (choices[0].message.content or "").strip() if choices else ""
                if text:
                    out = DescribedText(text)
                    out.usage = spent
                    return out
                reason = "empty reply"
            except openai.AuthenticationError:
                raise TextclfError(
                    f"authentication failed at {where} (HTTP 401): check OPENAI_API_KEY "
                    f"or --api-key"
                ) from None
            except openai.PermissionDeniedError as exc:
                raise TextclfError(
                    f"permission denied at {where} (HTTP 403) for model '{self.model}': "
                    f"{_server_message(exc, self._secret)}"
                ) from None
            except openai.NotFoundError as exc:
                raise TextclfError(
                    f"not found at {where} (HTTP 404): check --model '{self.model}' and "
                    f"--base-url (it usually ends in /v1): "
                    f"{_server_message(exc, self._secret)}"
                ) from None
            except openai.RateLimitError as exc:
                if _error_code(exc) == "insufficient_quota":
                    raise TextclfError(
                        f"quota exceeded at {where} (HTTP 429 insufficient_quota): "
                        f"{_server_message(exc, self._secret)}"
                    ) from None
                reason, hint = "HTTP 429 rate limited", _retry_after(exc)
            except openai.APIStatusError as exc:
                code = exc.status_code
                if code < 500 and code not in (408, 409):
                    raise TextclfError(
                        f"the server at {where} rejected the request for class "
                        f"'{class_name}' (HTTP {code}): "
                        f"{_server_message(exc, self._secret)}"
                    ) from None
                reason, hint = f"HTTP {code}", _retry_after(exc)
            except openai.APITimeoutError:
                reason = f"timed out after {self.timeout:g} s"
            except openai.APIConnectionError as exc:
                cause = exc.__cause__ or exc
                reason = f"connection failed ({scrub(type(cause).__name__, self._secret)})"
            except openai.OpenAIError as exc:
                raise TextclfError(
                    f"request to {where} failed for class '{class_name}': "
                    f"{scrub(exc, self._secret)}"
                ) from None
            except (
                ValueError
            ) as exc:  # the client parses the body itself: a truncated reply is a JSONDecodeError
                reason = f"the reply is not valid JSON (truncated?): {scrub(exc, self._secret)}"
            attempt += 1
            if attempt > self.max_retries:
                raise TextclfError(
                    f"the server at {where} kept failing for class '{class_name}': "
                    f"{reason} after {attempt} attempts (retry budget {self.max_retries})"
                )
            delay = self._delay(attempt, hint)
            if self.on_retry is not None:
                self.on_retry(class_name, attempt, delay, reason)
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()


def _make(**options) -> OpenAIDescriber:
    return OpenAIDescriber(**options)


PLUGIN = DescriberPlugin(
    "openai",
    "chat completions from OpenAI or any OpenAI-compatible server "
    "(--base-url; key from OPENAI_API_KEY or --api-key, none for a local server)",
    _make,
    offline=False,
)
