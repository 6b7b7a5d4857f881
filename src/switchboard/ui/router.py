"""The console's routes and static files, installed on the app by :func:`install`."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from switchboard.settings import Settings
from switchboard.ui import accounts, auth, conversations, ledger, operations, overview, runs
from switchboard.ui.render import STATIC
from switchboard.ui.session import SessionCodec

ROUTERS = (
    auth.router,
    overview.router,
    accounts.router,
    ledger.router,
    conversations.router,
    runs.router,
    operations.router,
)


def install(app: FastAPI, settings: Settings) -> None:
    app.state.console_sessions = SessionCodec(settings)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC, check_dir=False), name="ui-static")
