"""The web app through FastAPI's TestClient: the annotator flow and every security check of issue 21."""

from __future__ import annotations

import io
import warnings
import zipfile

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from perface.annotation.app import create_app
from perface.annotation.security import RateLimiter, csrf_token


@pytest.fixture
def client(project):
    p, admin = project
    token = p.invite("ann1")
    other = p.invite("ann2")
    c = TestClient(create_app(p), base_url="http://127.0.0.1:8000")
    return c, p, admin, token, other


def _h(p, token: str) -> dict:
    return {"X-CSRF-Token": csrf_token(p.secret, token)}


def test_annotator_flow_and_admin_counts(client) -> None:
    c, p, admin, token, _ = client
    page = c.get(f"/a/{token}")
    assert page.status_code == 200 and csrf_token(p.secret, token) in page.text and "ann1" in page.text
    assert "Content-Security-Policy" in page.headers and page.headers["Referrer-Policy"] == "no-referrer"
    item = c.post(f"/a/{token}/api/next", json={}, headers=_h(p, token)).json()
    for side in "abc":
        img = c.get(f"/a/{token}/img/{item['assignment_id']}/{side}")
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    for _ in range(3):
        r = c.post(f"/a/{token}/api/vote", json={"assignment_id": item["assignment_id"], "answer": "a", "rt_ms": 1200},
                   headers=_h(p, token))
        assert r.status_code == 200
        item = r.json()["next"]
    summary = c.get(f"/admin/{admin}/summary.json").json()
    assert summary["total_votes"] == 3 and summary["annotators"][0]["votes"] == 3
    assert "Krippendorff" in c.get(f"/admin/{admin}").text


def test_only_invited_tokens_and_admin_is_separate(client) -> None:
    c, p, admin, token, _ = client
    assert c.get("/a/" + "x" * 32).status_code == 404
    assert c.get(f"/admin/{token}").status_code == 404  # an annotator token is not an admin token
    assert c.get(f"/a/{admin}").status_code == 404  # and the admin token cannot vote
    assert c.get("/a/short").status_code == 422


def test_csrf_content_type_origin_and_size(client) -> None:
    c, p, _, token, other = client
    url = f"/a/{token}/api/next"
    assert c.post(url, json={}).status_code == 403  # no CSRF token
    assert c.post(url, json={}, headers=_h(p, other)).status_code == 403  # another annotator's CSRF token
    assert c.post(url, data={"x": "1"}, headers=_h(p, token)).status_code == 415  # a plain form post
    assert c.post(url, json={}, headers={**_h(p, token), "Origin": "http://evil.example"}).status_code == 403
    big = {"assignment_id": 1, "answer": "a", "rt_ms": 1, "pad": "x" * 5000}
    assert c.post(f"/a/{token}/api/vote", json=big, headers=_h(p, token)).status_code == 413
    assert c.put(url, json={}).status_code == 405


def test_vote_input_checks_and_assignment_ownership(client) -> None:
    c, p, _, token, other = client
    item = c.post(f"/a/{token}/api/next", json={}, headers=_h(p, token)).json()
    vote = f"/a/{token}/api/vote"
    for bad in ({"assignment_id": item["assignment_id"], "answer": "c", "rt_ms": 1},
                {"assignment_id": item["assignment_id"], "answer": "a", "rt_ms": -1},
                {"assignment_id": item["assignment_id"], "answer": "a", "rt_ms": 1, "extra": 1},
                {"assignment_id": "1; DROP TABLE votes", "answer": "a", "rt_ms": 1}):
        assert c.post(vote, json=bad, headers=_h(p, token)).status_code == 422
    stolen = {"assignment_id": item["assignment_id"], "answer": "a", "rt_ms": 1}
    assert c.post(f"/a/{other}/api/vote", json=stolen, headers=_h(p, other)).status_code == 403
    assert c.get(f"/a/{other}/img/{item['assignment_id']}/c").status_code == 404  # not their triplet


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "..%2f..%2fproject.sqlite", "1/..%2f..%2fetc",
                                  "1/d", "1/c.jpg", "0/c", "99999999999/c"])
def test_image_routes_cannot_traverse(client, path: str) -> None:
    c, p, _, token, _ = client
    c.post(f"/a/{token}/api/next", json={}, headers=_h(p, token))
    r = c.get(f"/a/{token}/img/{path}")
    assert r.status_code in (404, 422) and not r.content.startswith(b"SQLite") and b"root:" not in r.content
    with pytest.raises(Exception):  # noqa: B017 - the library refuses too
        p.image_path("../project", "a")


def test_rate_limit_per_token(project) -> None:
    p, _ = project
    token, other = p.invite("ann1"), p.invite("ann2")
    c = TestClient(create_app(p, rate=0.001, burst=5))
    codes = [c.get(f"/a/{token}").status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[-1] == 429
    assert c.get(f"/a/{other}").status_code == 200  # another token has its own bucket
    bucket = RateLimiter(rate=1, burst=2)
    assert [bucket.allow("k", now=t) for t in (0, 0, 0, 1.01)] == [True, True, False, True]


def test_admin_invite_needs_csrf_and_export_downloads(client) -> None:
    c, p, admin, token, _ = client
    assert c.post(f"/admin/{admin}/invite", data={"name": "ann3", "csrf": "nope"}).status_code == 403
    r = c.post(f"/admin/{admin}/invite", data={"name": "ann3", "csrf": csrf_token(p.secret, "admin:" + admin)})
    assert r.status_code == 200 and "/a/" in r.text
    link = r.text.split('id="new-link">')[1].split("<")[0]
    assert c.get(link.replace("http://127.0.0.1:8000", "")).status_code == 200
    assert c.get(f"/admin/{admin}/export.zip").status_code == 409  # no votes yet
    from .conftest import annotator_id, answer_all

    for name in ("ann1", "ann2", "ann3"):
        answer_all(p, annotator_id(p, name), lambda code: "a")
    z = c.get(f"/admin/{admin}/export.zip")
    assert z.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    assert "triplet_answers.csv" in names and "t0000_c.jpg" in names
