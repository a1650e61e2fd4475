"""The outbox against each vendor's loopback server misbehaving on purpose: 429 with Retry-After, 500, 401, a hang
after the write landed, a deleted ticket, a restart mid-delivery; every write arrives once or is dead, with why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.connectors.base import Connector, FieldMapping
from agents.connectors.delivery import Deliverer, DeliveryPolicy
from agents.connectors.outbox import Outbox, OutboxItem
from agents.connectors.registry import connector_class, connector_config
from agents.connectors.writeback import MARKER_PREFIX, plan_pending
from agents.settings import Settings
from agents.store.tickets import Store, database_url, make_engine
from agents.types import Ticket
from agents.web.desk import as_ticket
from tests.connector_kit import VendorKit
from tests.test_connectors_flow import BODY, TITLE, with_modes
from tests.vendors.kit import Fault


class Clock:
    """The store's clock, moved by the test instead of waiting out Retry-After and backoff."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Rig:
    kit: VendorKit
    clock: Clock
    store: Store
    outbox: Outbox
    connector: Connector
    external: str

    def deliverer(self, max_attempts: int = 4) -> Deliverer:
        policy = DeliveryPolicy(max_attempts=max_attempts, backoff=1.0, backoff_max=10.0, concurrency=2)
        return Deliverer(self.outbox, {self.kit.system: self.connector}, policy)

    def item(self) -> OutboxItem:
        (item,) = [i for i in self.outbox.list() if i.status != "skipped"]
        return item

    def notes(self) -> list[str]:
        return [n for n in self.kit.notes(self.external) if MARKER_PREFIX in n]


def rig(kit: VendorKit, service: Any, tmp_path: Path, external: str | None = None, timeout: float = 5.0) -> Rig:
    """A triaged vendor ticket (mode suggest) with its write-back planned in the outbox, on a SQLite store."""
    clock = Clock()
    store = Store(make_engine(database_url(tmp_path)), clock=clock)
    store.migrate()
    config = connector_config(Settings(data_dir=tmp_path, connector_timeout=timeout, **kit.settings), kit.system)
    assert config is not None
    connector = connector_class(kit.system)(config, FieldMapping(**kit.mapping))
    external = external or kit.seed(TITLE, BODY)
    ticket = Ticket(id=external, title=TITLE, body=BODY, channel=kit.system, metadata={"connector": kit.system})
    (record,), _ = store.create([ticket])
    store.save_results({record.id: with_modes(service, "suggest").triage_batch([as_ticket(record)])[0]})
    outbox = Outbox(store, lease=timedelta(seconds=60))
    assert plan_pending(outbox, {kit.system: connector.mapping}) == 1
    return Rig(kit, clock, store, outbox, connector, external)


def test_429_with_retry_after_rests_the_vendor_then_delivers_once(
    kit: VendorKit, trained_service: Any, tmp_path: Path
) -> None:
    r = rig(kit, trained_service, tmp_path)
    deliverer = r.deliverer()
    r.kit.server.fail(Fault(status=429, retry_after="30"))
    assert deliverer.run_once().outcomes == {"retry": 1}
    item = r.item()
    assert item.last_status == 429 and item.next_attempt_at == r.clock.now + timedelta(seconds=30)
    r.clock.advance(20)
    assert deliverer.run_once().claimed == 0  # Retry-After is honoured: nothing is sent before it is over
    r.clock.advance(11)
    assert deliverer.run_once().outcomes == {"delivered": 1}
    assert len(r.notes()) == 1 and r.item().status == "delivered"


def test_500_then_401_are_retried_with_backoff_and_delivered_once(
    kit: VendorKit, trained_service: Any, tmp_path: Path
) -> None:
    r = rig(kit, trained_service, tmp_path)
    deliverer = r.deliverer()
    r.kit.server.fail(Fault(status=500))
    assert deliverer.run_once().outcomes == {"retry": 1}
    first = r.item()
    assert first.last_status == 500 and 0.5 <= (first.next_attempt_at - r.clock.now).total_seconds() <= 1.0
    r.kit.server.fail(Fault(status=401, body={"error": "token expired"}))
    r.clock.advance(1.0)
    assert deliverer.run_once().outcomes == {"retry": 1}
    second = r.item()
    assert second.attempts == 2 and 1.0 <= (second.next_attempt_at - r.clock.now).total_seconds() <= 2.0
    r.clock.advance(2.0)
    assert deliverer.run_once().outcomes == {"delivered": 1}
    assert len(r.notes()) == 1 and r.item().attempts == 3


def test_an_answer_lost_after_the_write_landed_is_not_written_again(
    kit: VendorKit, trained_service: Any, tmp_path: Path
) -> None:
    r = rig(kit, trained_service, tmp_path, timeout=0.5)
    deliverer = r.deliverer()
    r.kit.server.fail(Fault(apply_first=True, hang=2.0))  # the vendor applies the write, then never answers
    assert deliverer.run_once().outcomes == {"retry": 1}
    assert "Timeout" in (r.item().last_error or "")
    r.clock.advance(5)
    assert deliverer.run_once().outcomes == {"delivered": 1}
    assert len(r.notes()) == 1  # the second attempt found the note and did not post it again


def test_a_ticket_missing_in_the_vendor_is_dead_at_once_with_its_answer_and_can_be_replayed(
    kit: VendorKit, trained_service: Any, tmp_path: Path
) -> None:
    r = rig(kit, trained_service, tmp_path, external=kit.missing_id)
    deliverer = r.deliverer()
    assert deliverer.run_once().outcomes == {"dead": 1}
    dead = r.item()
    assert dead.status == "dead" and dead.last_status == 404 and "not in" in (dead.last_error or "")
    (replayed,) = r.outbox.replay([dead.id])
    assert replayed.status == "pending" and replayed.attempts == 0
    assert deliverer.run_once().outcomes == {"dead": 1}  # still gone: dead again, nothing written anywhere
    assert r.kit.writes() != []


def test_after_the_last_attempt_an_item_is_dead_with_the_vendors_last_answer(
    kit: VendorKit, trained_service: Any, tmp_path: Path
) -> None:
    r = rig(kit, trained_service, tmp_path)
    deliverer = r.deliverer(max_attempts=3)
    r.kit.server.fail(Fault(status=503, times=100, body={"error": "maintenance window"}))
    outcomes = []
    for _ in range(4):
        outcomes.append(deliverer.run_once().outcomes)
        r.clock.advance(20)
    assert outcomes == [{"retry": 1}, {"retry": 1}, {"dead": 1}, {}]
    dead = r.item()
    assert dead.attempts == 3 and dead.last_status == 503 and "maintenance window" in (dead.last_error or "")
    assert "after 3 attempts" in (dead.last_error or "") and r.notes() == []


def test_a_restart_in_the_middle_of_a_delivery_resumes_it_without_doubling(
    kit: VendorKit, trained_service: Any, tmp_path: Path
) -> None:
    r = rig(kit, trained_service, tmp_path)
    (claimed,) = r.outbox.claim(10)  # the first process claims the item, sends it, and dies before settling
    from agents.connectors.base import WriteBack

    with r.connector.client() as client:
        for call in r.connector.calls(WriteBack.model_validate(claimed.payload)):
            client.request(call.method, call.path, json=call.json_body, params=call.params or None)
    restarted = r.deliverer()  # a new process on the same database
    assert restarted.run_once().claimed == 0  # the claim is leased: not taken over while it may still be at work
    r.clock.advance(61)
    assert restarted.run_once().outcomes == {"delivered": 1}
    assert len(r.notes()) == 1 and r.item().attempts == 2
