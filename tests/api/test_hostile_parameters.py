"""Parameters PostgreSQL would refuse deep inside a query: a job id beyond its int4 column and a NUL byte in text.

Each is a malformed request: 400 with one line naming the parameter, on SQLite and PostgreSQL alike, never a 500
with the database's error (issue 32, item 13).
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.support import BASE, ZOOM, Region

TOO_BIG = 2**31  # the first job id that jobs.id (int4 on PostgreSQL) cannot hold


def _box(region: Region) -> str:
    return ",".join(str(value) for value in region.bbox.as_list())


JOB_ROUTES = ("/api/jobs/{job}", "/api/jobs/{job}/failures", "/api/jobs/{job}/layers", "/imagery/{job}/{z}/{x}/{y}",
              "/api/bbox?job={job}&bbox={box}&zoom={z}", "/api/summary?job={job}", "/api/jobs/{job}/review")


def test_every_route_taking_a_job_id_answers_400_for_ids_beyond_the_column(region: Region,
                                                                           client: TestClient) -> None:
    for job in (TOO_BIG, 2**63, 2**70):
        answers = {route: client.get(route.format(job=job, z=ZOOM, x=BASE[0], y=BASE[1], box=_box(region)))
                   for route in JOB_ROUTES}
        line = f"job {job} does not exist: job ids are 1..2147483647"
        assert {route: (a.status_code, a.json()) for route, a in answers.items()} == \
            dict.fromkeys(JOB_ROUTES, (400, {"detail": line}))


def test_the_largest_job_id_is_just_unknown(region: Region, client: TestClient) -> None:
    answer = client.get("/api/jobs/2147483647")
    assert answer.status_code == 404
    assert answer.json() == {"detail": f"job 2147483647 does not exist (job ids run 1..{region.job_id})"}


NUL_ROUTES = (
    ("/api/jobs/{job}/failures?reason=a%00b", "reason"),
    ("/api/models/a%00b", "model"),
    ("/overlay/a%00b/{z}/{x}/{y}.png", "model"),
    ("/overlay/a%00b/{z}/{x}/{y}.mvt", "model"),
    ("/overlay/a%00b/tilejson.json", "model"),
    ("/overlay/{model}/tilejson.json?label=For%00est", "label"),
    ("/api/tiles/{z}/{x}/{y}?model=a%00b", "model"),
    ("/api/point?lon=0&lat=0&zoom={z}&model=a%00b", "model"),
    ("/api/bbox?bbox={box}&zoom={z}&model=a%00b", "model"),
    ("/api/bbox?bbox={box}&zoom={z}&label=For%00est", "label"),
    ("/api/summary?job={job}&model=a%00b", "model"),
    ("/api/jobs/{job}/review?after=a%00b", "after"),
)


def test_a_nul_byte_in_any_text_parameter_is_a_400_naming_it(region: Region, client: TestClient) -> None:
    answers = {route: client.get(route.format(job=region.job_id, model=region.model_hash[:8], z=ZOOM, x=BASE[0],
                                              y=BASE[1], box=_box(region))) for route, _ in NUL_ROUTES}
    assert {route: (answers[route].status_code, answers[route].json()["detail"].partition(" (got ")[0])
            for route, _ in NUL_ROUTES} == {route: (400, f"{name}: NUL bytes are not allowed")
                                            for route, name in NUL_ROUTES}
