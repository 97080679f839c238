"""FHIR Bulk Data `$export` (asynchronous request pattern): kick-off, status polling, cancellation, file download.

  GET [base]/$export | [base]/{Type}/$export   (Prefer: respond-async) → 202 + Content-Location: status URL
  GET [base]/$export-poll-status?_jobId=…      → 202 + X-Progress while running, 200 + manifest when done
  DELETE [base]/$export-poll-status?_jobId=…   → 202, the job stops and its files are deleted
  GET [base]/$export-file/{job}/{file}         → application/fhir+ndjson

Only the requester (same client, same access profile) may poll and download; the files hold what that profile may
see (ror.export.stream). The work is done by `ror.export.runner.ExportRunner` (a thread, jobs in `export_job`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from ror.access import audit
from ror.config import get_settings
from ror.errors import Issue, NotFound, RorError
from ror.export.jobs import ACCEPTED, CANCELLED, COMPLETED, ERROR, RUNNING, Job
from ror.export.request import NDJSON, parse_request
from ror.export.runner import ExportRunner
from ror.fhir.access import caller_profile
from ror.fhir.common import base_url, check_type, services
from ror.fhir.responses import outcome_response
from ror.fhir.search import parser_for
from ror.search.normalise import fhir_instant

router = APIRouter(tags=["bulk export"])
JobId = Annotated[str, Query(alias="_jobId")]
STATUS_PATH = "/$export-poll-status"
OPERATION = {
    "name": "export",
    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    "documentation": "Bulk Data 2.0, ndjson; _type, _typeFilter (search criteria), _since; Prefer: respond-async",
}
FILE_PATH = "/$export-file"


def runner(app: FastAPI) -> ExportRunner:
    """The process's export runner (files under `app.state.export_dir`, else ROR_EXPORT_DIR)."""
    found = getattr(app.state, "export_runner", None)
    if found is None:
        directory = getattr(app.state, "export_dir", None) or get_settings().export_dir
        found = app.state.export_runner = ExportRunner(app.state.services, directory)
    return found


def install_export(app: FastAPI) -> None:
    """Start the runner with the server (it resumes the jobs a previous process left) and stop it on shutdown."""
    app.router.on_startup.append(lambda: runner(app).start())
    app.router.on_shutdown.append(lambda: runner(app).stop())


def _caller_key(request: Request) -> str:
    caller = getattr(request.state, "caller", None)
    if caller is None or caller.kind == "anonymous":
        return "anonymous"
    return f"{caller.kind}:{caller.subject or ''}"


def _kick_off(request: Request, level_type: str | None) -> Response:
    prefer = request.headers.get("prefer", "")
    if "respond-async" not in prefer.lower():
        raise RorError("$export is asynchronous: send the header 'Prefer: respond-async'", expression="Prefer")
    export = parse_request(list(request.query_params.multi_items()), parser_for(request), level_type)
    run = runner(request.app)
    job = run.jobs.create(
        export, request_url=str(request.url), profile=caller_profile(request), caller=_caller_key(request)
    )
    run.wake()
    status_url = f"{base_url(request)}{STATUS_PATH}?_jobId={job.id}"
    return Response(status_code=202, headers={"Content-Location": status_url})


def _owned_job(request: Request, job_id: str) -> Job:
    """The job, when the caller is its requester; 404 otherwise (a job of someone else is not revealed)."""
    job = runner(request.app).jobs.get(job_id)
    if job is None or job.status == CANCELLED:
        raise NotFound(f"export job {job_id!r} is unknown, cancelled or deleted", expression="_jobId")
    if not job.owned_by(_caller_key(request), caller_profile(request)):
        caller = _caller_key(request)
        audit.record(
            services(request).engine,
            actor_type=caller.split(":", 1)[0],
            actor_id=caller,
            action="export-status",
            outcome="denied",
            remote_addr=request.client.host if request.client else None,
            detail=f"job {job_id}",
        )
        raise NotFound(f"export job {job_id!r} is unknown, cancelled or deleted", expression="_jobId")
    return job


def manifest(request: Request, job: Job) -> dict:
    base = base_url(request)
    return {
        "transactionTime": fhir_instant(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": job.caller != "anonymous",
        "output": [
            {"type": o.res_type, "url": f"{base}{FILE_PATH}/{job.id}/{o.name}", "count": o.count} for o in job.output
        ],
        "error": [],
    }


@router.get("/$export", summary="Bulk Data system export (asynchronous)")
def export_system(request: Request) -> Response:
    return _kick_off(request, None)


@router.get(STATUS_PATH, summary="Bulk Data export status / manifest")
def export_status(request: Request, job_id: JobId) -> Response:
    job = _owned_job(request, job_id)
    if job.status in (ACCEPTED, RUNNING):
        return Response(
            status_code=202,
            headers={"X-Progress": f"{job.status}: {job.progress} resources written", "Retry-After": "2"},
        )
    if job.status == ERROR:
        return outcome_response(500, [Issue("error", "exception", f"export failed: {job.error}")])
    assert job.status == COMPLETED
    return JSONResponse(manifest(request, job), headers={"Cache-Control": "no-store"})


@router.delete(STATUS_PATH, summary="Cancel a Bulk Data export and delete its files")
def export_cancel(request: Request, job_id: JobId) -> Response:
    job = _owned_job(request, job_id)
    runner(request.app).cancel(job.id)
    return Response(status_code=202)


@router.get(FILE_PATH + "/{job_id}/{name}", summary="Download one ndjson file of a Bulk Data export")
def export_file(request: Request, job_id: str, name: str) -> Response:
    job = _owned_job(request, job_id)
    names = {o.name for o in job.output}
    if job.status != COMPLETED or name not in names:
        raise NotFound(f"export file {name!r} is not part of job {job_id}", expression="name")
    path = runner(request.app).job_dir(job.id) / name
    if not path.is_file():
        raise NotFound(f"export file {name!r} has been deleted", expression="name")
    return FileResponse(path, media_type=NDJSON, headers={"Cache-Control": "no-store"})


@router.get("/{res_type}/$export", summary="Bulk Data export of one resource type (asynchronous)")
def export_type(res_type: str, request: Request) -> Response:
    check_type(res_type)
    return _kick_off(request, res_type)
