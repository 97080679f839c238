"""`ror subscriptions …` and `ror urgences …`: delivery of FHIR subscription notifications (ops and tests) and the
emergency-activity demo (adapters of ror.subscriptions and ror.urgences, registered by cli.py)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select

from ror.config import get_settings
from ror.db import migrate
from ror.db.database import get_engine
from ror.db.tables import subscription
from ror.services import Services

subscriptions_app = typer.Typer(help="FHIR rest-hook subscriptions: delivery, status", no_args_is_help=True)
urgences_app = typer.Typer(help="Emergency-department activity", no_args_is_help=True)
console = Console(stderr=True)


def _services() -> Services:
    engine = get_engine()
    migrate.upgrade(engine)
    return Services(engine)


@subscriptions_app.command("deliver")
def deliver(
    once: Annotated[bool, typer.Option("--once", help="one round (heartbeats, claim, send), then exit")] = False,
    poll: Annotated[float, typer.Option(help="seconds between rounds when idle")] = 2.0,
) -> None:
    """Send due notifications from the outbox (the server does it too; several processes may run at once)."""
    from ror.subscriptions.delivery import Deliverer

    services = _services()
    d = Deliverer(services.store, get_settings().fhir_base)
    try:
        while True:
            r = d.deliver_once()
            console.print(
                f"delivered {r.delivered}, failed {r.failed}, deferred {r.released}, heartbeats {r.heartbeats}"
            )
            if once:
                return
            if r.delivered + r.failed == 0:
                time.sleep(poll)
    finally:
        d.close()


@subscriptions_app.command("list")
def list_subscriptions() -> None:
    """Every subscription with its status, events and last error."""
    services = _services()
    with services.engine.connect() as c:
        rows = c.execute(select(subscription).order_by(subscription.c.created_at)).all()
    for r in rows:
        console.print(f"{r.id} {r.status:9} events={r.events} failures={r.failures} {r.criteria} -> {r.endpoint}")
        if r.last_error:
            console.print(f"    last error: {r.last_error[:200]}")


@urgences_app.command("demo")
def urgences_demo() -> None:
    """Emergency departments and 24 hourly reports scaled from SAE 2023 passages (establishments already loaded)."""
    from ror.urgences.demo import load_urgences_demo

    services = _services()
    console.print(load_urgences_demo(services.urgences, get_settings().reference_data))
