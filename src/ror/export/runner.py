"""The background runner of export jobs: one thread per server process that claims jobs from `export_job` and
writes their files. Because the queue is the table, a job survives a restart: at startup (and every few seconds)
the runner claims `accepted` jobs and jobs whose runner died (no heartbeat for `jobs.LEASE`), and runs them
again from the beginning."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from ror.export.jobs import ACCEPTED, Job, JobStore
from ror.export.stream import ExportWriter, Stopped
from ror.search.query import QueryParser
from ror.search.systems import make_system_resolver
from ror.services import Services

log = logging.getLogger("ror.export")
POLL_S = 2.0


def query_parser(services: Services) -> QueryParser:
    """The search's parser, built as the FHIR adapter builds it (same registry, systems and centroids)."""
    return QueryParser(
        services.registry, make_system_resolver(services.terminology.resolve_system), services.geography.centroid
    )


class ExportRunner:
    def __init__(self, services: Services, directory: Path, *, poll_s: float = POLL_S) -> None:
        self.jobs = JobStore(services.engine)
        self.services = services
        self.directory = Path(directory)
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="ror-export", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """A job was accepted: look for work now rather than at the next poll."""
        self.start()
        self._wake.set()

    def job_dir(self, job_id: str) -> Path:
        return self.directory / job_id

    # -- work --------------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            worked = False
            try:
                worked = self.run_pending()
            except Exception:  # a broken database must not kill the runner; retried at the next poll
                log.exception("export runner: unexpected error")
            if not worked:
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def run_pending(self) -> bool:
        """Claim and run one job; False when there was nothing to do."""
        for job in self.jobs.claimable():
            if self._stop.is_set():
                return False
            if self.jobs.claim(job):
                self.run(job.id)
                return True
        return False

    def run(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        target = self.job_dir(job.id)
        shutil.rmtree(target, ignore_errors=True)  # a restarted job starts from a clean directory
        writer = ExportWriter(self.services.engine, query_parser(self.services))
        try:
            outputs, total = writer.write(job.request, job.profile, target, lambda n: self._heartbeat(job, n))
        except Stopped:
            self._stopped(job)
            return
        except Exception as exc:
            log.exception("export job %s failed", job.id)
            self.jobs.fail(job.id, f"{type(exc).__name__}: {exc}")
            return
        if not self.jobs.complete(job.id, outputs, total):  # cancelled between the last batch and now
            shutil.rmtree(target, ignore_errors=True)

    def _heartbeat(self, job: Job, progress: int) -> bool:
        return not self._stop.is_set() and self.jobs.heartbeat(job.id, progress)

    def _stopped(self, job: Job) -> None:
        shutil.rmtree(self.job_dir(job.id), ignore_errors=True)
        if self._stop.is_set():  # shutting down: hand the job back so that the next start runs it at once
            self.jobs.release(job.id)

    def cancel(self, job_id: str) -> bool:
        """DELETE of the status URL: the job stops at its next batch; its files are removed."""
        done = self.jobs.cancel(job_id)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        return done


__all__ = ["ACCEPTED", "ExportRunner", "query_parser"]
