"""Helpers of the console tests: a browser-like client per user (its own cookie jar), logging in
through the login form, and the CSRF token a page carries."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from switchboard.ui.errors import ConsoleRoute

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)


@asynccontextmanager
async def visitor(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookies, on the running app (its lifespan already started)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def log_in(http: httpx.AsyncClient, key: str) -> str:
    """Log in through the form; the session's CSRF token."""
    form = await http.get("/ui/login")
    assert form.status_code == 200, form.text
    response = await http.post(
        "/ui/login", data={"key": key, "csrf_token": csrf_of(form.text), "next": "/ui/"}
    )
    assert response.status_code == 303, response.text
    overview = await http.get("/ui/")
    assert overview.status_code == 200, overview.text
    return csrf_of(overview.text)


def console_routes(app: FastAPI) -> Iterator[APIRoute]:
    def walk(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            if hasattr(route, "original_router"):
                yield from walk(route.original_router.routes)
            else:
                yield route

    yield from (r for r in walk(app.routes) if isinstance(r, ConsoleRoute))
