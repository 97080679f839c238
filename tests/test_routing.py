"""The application's route table is flat (ror.routing.include) and the consumers' search is served outside
FastAPI's router (ror.fhir.search.SearchFastPath) with the same answers, errors included."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from starlette.routing import Route

from ror.access.policy import Profile
from ror.routing import include
from ror.server import create_app
from ror.store import ResourceStore
from tests.search_fixtures import populate


def test_every_http_route_of_the_app_sits_in_one_flat_list(engine: Engine) -> None:
    app = create_app(engine, anonymous_profile=Profile.ALL)
    routes = app.router.routes
    kinds = {type(r).__name__ for r in routes}
    assert kinds <= {"APIRoute", "Route", "Mount"}, kinds  # no nested router walked on every request
    paths = [(r.path, sorted(r.methods)) for r in routes if isinstance(r, APIRoute)]
    # the specific /fhir routes stay before the generic ones
    assert paths.index(("/fhir/metadata", ["GET"])) < paths.index(("/fhir/{res_type}", ["GET"]))
    assert paths.index(("/fhir/Subscription", ["GET"])) < paths.index(("/fhir/{res_type}", ["GET"]))
    assert paths.index(("/fhir/{res_type}/$export", ["GET"])) < paths.index(("/fhir/{res_type}/{res_id}", ["GET"]))


def test_include_copies_prefix_and_attributes_and_refuses_what_it_cannot_copy() -> None:
    inner = APIRouter(tags=["t"], include_in_schema=False)

    @inner.get("/ping", name="ping", status_code=202)
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app = FastAPI()
    include(app, inner, prefix="/x")
    route = next(r for r in app.router.routes if isinstance(r, APIRoute))
    assert (route.path, route.name, route.status_code, route.tags, route.include_in_schema) == (
        "/x/ping",
        "ping",
        202,
        ["t"],
        False,
    )
    with TestClient(app) as client:
        r = client.get("/x/ping")
        assert (r.status_code, r.json()) == (202, {"pong": "yes"})
    plain = APIRouter()
    plain.routes.append(Route("/raw", lambda request: None))
    with pytest.raises(TypeError, match="only API routes"):
        include(FastAPI(), plain)


def test_search_fast_path_answers_as_the_app(store: ResourceStore, engine: Engine) -> None:
    populate(store)
    with TestClient(create_app(engine, anonymous_profile=Profile.ALL)) as client:
        get = client.get("/fhir/Location", params={"_count": "2"})
        post = client.post("/fhir/Location/_search", data={"_count": "2"})  # through FastAPI's router
        assert get.status_code == post.status_code == 200
        assert get.headers["content-type"].startswith("application/fhir+json")
        assert [e["fullUrl"] for e in get.json()["entry"]] == [e["fullUrl"] for e in post.json()["entry"]]
        bad = client.get("/fhir/Location", params={"no-such-param": "1"})
        assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
        assert "no-such-param" in str(bad.json()["issue"])
        unknown = client.get("/fhir/Patient")  # not a served type: the app's routes answer
        assert unknown.status_code == 404 and unknown.json()["resourceType"] == "OperationOutcome"
        assert client.get("/fhir/Subscription").status_code in (200, 401, 403)  # its own route, not the search
