"""The annotation web app (FastAPI): annotator pages reached by invite link, an admin page with its own
token, a JSON API for the few state changes (next, vote, undo), and the triplet images.

Every page and asset is served from the package (no CDN). All state is in the database, so a restart
loses nothing: an annotator reopening the link gets back the triplet they were on.
"""


import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from perface.face.io import PerFaceError

from .assign import Item, VoteRefused, annotator_for_token, assignment_image, next_item, record_vote, undo_last
from .export import export_project, zip_folder
from .project import Project, hash_token
from .quality import summarize
from .security import RateLimiter, csrf_ok, csrf_token, token_ok

__all__ = ["create_app"]

MAX_BODY = 4096  # bytes: every request body of this app is tiny
Token = Annotated[str, PathParam(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class VoteIn(BaseModel):
    """Body of ``POST .../api/vote``."""

    model_config = ConfigDict(extra="forbid")
    assignment_id: int = Field(ge=1, le=2**31 - 1)
    answer: Literal["a", "b"]
    rt_ms: int = Field(ge=0, le=3_600_000)


def _item_json(item: Item | None) -> dict:
    if item is None:
        return {"done": True}
    return {"done": False, "assignment_id": item.assignment_id, "answered": item.answered,
            "remaining": item.remaining, "can_undo": item.can_undo}


def create_app(project: Project, *, rate: float = 10.0, burst: float = 40.0) -> FastAPI:
    """The app for one project; ``rate``/``burst`` set the per-token rate limit (0: none)."""
    app = FastAPI(title="PerFace annotation", docs_url=None, redoc_url=None, openapi_url=None)
    pkg = resources.files("perface.annotation")
    templates = Jinja2Templates(directory=str(pkg / "templates"))
    app.mount("/static", StaticFiles(directory=str(pkg / "static")), name="static")
    limiter = RateLimiter(rate, burst)
    misses = RateLimiter(2.0 if rate > 0 else 0, 20.0)
    admin_hash = project.admin_hash()

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method not in ("GET", "HEAD", "POST"):
            return JSONResponse({"detail": "method not allowed"}, 405)
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return JSONResponse({"detail": "Content-Length required"}, 411)
            if int(length) > MAX_BODY:
                return JSONResponse({"detail": "request body too large"}, 413)
            origin = request.headers.get("origin")
            if origin and origin.split("://", 1)[-1] != request.headers.get("host", ""):
                return JSONResponse({"detail": "cross-origin request refused"}, 403)
        response = await call_next(request)
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    def _limit(key: str) -> None:
        if not limiter.allow(key):
            raise HTTPException(429, "too many requests, slow down")

    def annotator(request: Request, token: Token) -> tuple[int, str, str]:
        """``(annotator id, name, token)`` for a valid invite token, else 404 (429 when guessing)."""
        _limit(token)
        who = annotator_for_token(project, token) if token_ok(token) else None
        if who is None:
            if not misses.allow(request.client.host if request.client else "?"):
                raise HTTPException(429, "too many requests, slow down")
            raise HTTPException(404, "unknown or expired invite link")
        return who[0], who[1], token

    def admin(token: Token) -> str:
        _limit("admin:" + token)
        if not (token_ok(token) and admin_hash and hash_token(token) == admin_hash):
            raise HTTPException(404, "not found")
        return token

    def csrf_json(request: Request, who: Annotated[tuple[int, str, str], Depends(annotator)]) -> tuple[int, str, str]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "expected application/json")
        if not csrf_ok(project.secret, who[2], request.headers.get("x-csrf-token")):
            raise HTTPException(403, "missing or wrong CSRF token")
        return who

    Who = Annotated[tuple[int, str, str], Depends(annotator)]
    CheckedWho = Annotated[tuple[int, str, str], Depends(csrf_json)]

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        return templates.TemplateResponse(request, "home.html", {})

    @app.get("/a/{token}", response_class=HTMLResponse)
    def annotate_page(request: Request, who: Who) -> Response:
        return templates.TemplateResponse(request, "annotate.html", {
            "name": who[1], "token": who[2], "csrf": csrf_token(project.secret, who[2]),
            "k": project.settings.votes_per_triplet})

    @app.post("/a/{token}/api/next")
    def api_next(who: CheckedWho) -> dict:
        return _item_json(next_item(project, who[0]))

    @app.post("/a/{token}/api/vote")
    def api_vote(body: VoteIn, who: CheckedWho) -> dict:
        try:
            new = record_vote(project, who[0], body.assignment_id, body.answer, body.rt_ms)
        except VoteRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return {"ok": True, "new": new, "next": _item_json(next_item(project, who[0]))}

    @app.post("/a/{token}/api/undo")
    def api_undo(who: CheckedWho) -> dict:
        undone = undo_last(project, who[0])
        return {"undone": undone, "next": _item_json(next_item(project, who[0]))}

    @app.get("/a/{token}/img/{assignment_id}/{side}")
    def image(request: Request, token: Token, assignment_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
              side: Literal["a", "b", "c"]) -> Response:
        _limit(token)
        code = assignment_image(project, token, assignment_id) if token_ok(token) else None
        if code is None:
            if not misses.allow(request.client.host if request.client else "?"):
                raise HTTPException(429, "too many requests, slow down")
            raise HTTPException(404, "not found")
        try:
            path = project.image_path(code, side)
        except PerFaceError:
            raise HTTPException(404, "not found") from None
        if not path.is_file():
            raise HTTPException(404, "not found")
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    def _admin_page(request: Request, token: str, new_link: str | None = None, error: str | None = None) -> Response:
        summary = summarize(project)
        top = max(summary.histogram.values(), default=1)
        last = max([project.settings.votes_per_triplet, *summary.histogram])
        bars = [{"n": n, "count": summary.histogram.get(n, 0), "h": round(100 * summary.histogram.get(n, 0) / top)}
                for n in range(last + 1)]
        return templates.TemplateResponse(request, "admin.html", {
            "s": summary, "bars": bars, "token": token, "csrf": csrf_token(project.secret, "admin:" + token),
            "new_link": new_link, "error": error, "settings": project.settings})

    @app.get("/admin/{token}", response_class=HTMLResponse)
    def admin_page(request: Request, token: Annotated[str, Depends(admin)]) -> Response:
        return _admin_page(request, token)

    @app.get("/admin/{token}/summary.json")
    def admin_summary(token: Annotated[str, Depends(admin)]) -> dict:
        s = summarize(project)
        return {"n_real": s.n_real, "n_catch": s.n_catch, "total_votes": s.total_votes, "valid_votes": s.valid_votes,
                "histogram": s.histogram, "complete": s.complete, "unanimity_rate": s.unanimity_rate,
                "alpha": s.alpha, "progress": s.progress,
                "annotators": [{"name": a.name, "votes": a.votes, "catch_correct": a.catch_correct,
                                "catch_answered": a.catch_answered, "median_rt_ms": a.median_rt_ms,
                                "flagged": a.flagged} for a in s.annotators]}

    @app.post("/admin/{token}/invite", response_class=HTMLResponse)
    def admin_invite(request: Request, token: Annotated[str, Depends(admin)],
                     name: Annotated[str, Form(max_length=64)], csrf: Annotated[str, Form(max_length=64)]) -> Response:
        if not csrf_ok(project.secret, "admin:" + token, csrf):
            raise HTTPException(403, "missing or wrong CSRF token")
        try:
            new = project.invite(name.strip())
        except PerFaceError as exc:
            return _admin_page(request, token, error=str(exc))
        return _admin_page(request, token, new_link=str(request.base_url).rstrip("/") + f"/a/{new}")

    @app.get("/admin/{token}/export.zip")
    def admin_export(token: Annotated[str, Depends(admin)]) -> Response:
        tmp = Path(tempfile.mkdtemp(prefix="perface-export-"))
        try:
            export_project(project, tmp / "perface-annotations")
        except PerFaceError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise HTTPException(409, str(exc)) from None
        z = zip_folder(tmp / "perface-annotations", tmp / "perface-annotations.zip")
        return FileResponse(z, media_type="application/zip", filename="perface-annotations.zip",
                            background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))

    return app


def serve(project: Project, host: str = "127.0.0.1", port: int = 8000, *, rate: float = 10.0,
          burst: float = 40.0, log_level: str = "warning") -> None:
    """Run the app with uvicorn until interrupted (one process: SQLite has one writer anyway)."""
    import uvicorn

    uvicorn.run(create_app(project, rate=rate, burst=burst), host=host, port=port, log_level=log_level,
                limit_concurrency=512, timeout_keep_alive=30)


class BackgroundServer:
    """The app served by uvicorn in a background thread on 127.0.0.1 (tests, benchmarks, screenshots).

    ``with BackgroundServer(project) as url:`` gives ``http://127.0.0.1:PORT``; leaving stops it.
    """

    def __init__(self, project: Project, port: int = 0, *, rate: float = 10.0, burst: float = 40.0) -> None:
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.port = port
        config = uvicorn.Config(create_app(project, rate=rate, burst=burst), host="127.0.0.1", port=port,
                                log_level="warning", limit_concurrency=512)
        self.server = uvicorn.Server(config)
        self.thread = None

    def __enter__(self) -> str:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"annotation server did not start on 127.0.0.1:{self.port}")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
