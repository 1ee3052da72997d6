"""stripe-python's HTTP client interface over a caller's httpx client, in both flavours.

Written twice by hand (a sync ``httpx.Client`` and an async ``httpx.AsyncClient``
need different methods of stripe's interface); ``scripts/unasync.py`` renames
:class:`AsyncHttpxTransport` to :class:`HttpxTransport` in the generated sync
adapter. stripe's own ``HTTPXClient`` creates its clients itself (nothing to
inject or mock per provider) and uploads the form body with httpx's deprecated
``data=<str>``, which warns on every POST.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import stripe

__all__ = ["AsyncHttpxTransport", "HttpxTransport"]


def _unreachable(exc: httpx.HTTPError) -> stripe.APIConnectionError:
    # stripe's retry loop only retries APIConnectionError with should_retry set.
    return stripe.APIConnectionError(  # type: ignore[no-untyped-call]  # stripe leaves it unannotated
        f"could not reach Stripe: {type(exc).__name__}", should_retry=True
    )


class HttpxTransport(stripe.HTTPClient):
    """stripe-python's sync HTTP client interface over a caller's ``httpx.Client``."""

    name = "paykit-httpx"

    def __init__(self, client: httpx.Client) -> None:
        super().__init__()
        self._client = client

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        try:
            response = self._client.request(method, url, headers=headers, content=post_data or None)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        return response.text, response.status_code, response.headers

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        content, status, response_headers = self.request(method, url, headers, post_data)
        return iter((content,)), status, response_headers

    def close(self) -> None:
        self._client.close()


class AsyncHttpxTransport(stripe.HTTPClient):
    """stripe-python's async HTTP client interface over a caller's ``httpx.AsyncClient``.

    Only the ``*_async`` methods work: the async adapter calls stripe's
    ``*_async`` methods only.
    """

    name = "paykit-httpx-async"

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__()
        self._client = client

    async def request_async(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            response = await self._client.request(method, url, headers=headers, content=post_data or None)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        return response.content, response.status_code, response.headers

    async def request_stream_async(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
    ) -> tuple[AsyncIterator[bytes], int, Mapping[str, str]]:
        content, status, response_headers = await self.request_async(method, url, headers, post_data)

        async def chunks() -> AsyncIterator[bytes]:
            yield content

        return chunks(), status, response_headers

    async def close_async(self) -> None:
        await self._client.aclose()

    async def sleep_async(self, secs: float) -> None:
        await asyncio.sleep(secs)

    def close(self) -> None:
        """Nothing to close synchronously: :meth:`close_async` closes the async client."""
