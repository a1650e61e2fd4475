"""The ticket store on a real PostgreSQL server: migrations, the round trip, row locks between replicas, the API.

Every run makes its own databases (triage_test_<random>) and drops them at the end. The server is
TRIAGE_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres); without one the module skips.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pydantic import ValidationError
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session
from test_server_api import Api, make_api

from agents.store.records import FeedbackIn, TicketPatch
from agents.store.review import Review, feedback_training_rows
from agents.store.tables import Base, TicketRow
from agents.store.tickets import MIGRATIONS, IdempotencyConflict, Store, make_engine, utcnow
from agents.types import Ticket
from agents.web.desk import Desk
from agents.web.metrics import ServiceMetrics
from tests.serverkit import head_revision

REPO = Path(__file__).resolve().parent.parent
ADMIN_URL = make_url(os.environ.get("TRIAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
SERVER_ZONE = "America/New_York"  # the test databases' own time zone: the store must read and write UTC anyway


def libpq(url: URL) -> str:
    """The SQLAlchemy URL as psycopg's connection string."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Server:
    """The PostgreSQL server: makes fresh databases and drops every one it made."""

    def __init__(self, admin: URL) -> None:
        self.admin = admin
        self.made: list[str] = []

    def _run(self, statement: sql.Composable) -> None:
        with psycopg.connect(libpq(self.admin), autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)

    def new_database(self) -> str:
        name = f"triage_test_{secrets.token_hex(6)}"
        self._run(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.made.append(name)
        self._run(sql.SQL("ALTER DATABASE {} SET timezone TO {}").format(sql.Identifier(name), SERVER_ZONE))
        return self.admin.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for name in self.made:  # FORCE: a test that failed half-way may leave a connection open
            self._run(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def unreachable(admin: URL) -> str | None:
    """Why the server cannot be used (to skip with), or None."""
    try:
        psycopg.connect(libpq(admin), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"no PostgreSQL server at {admin.host}:{admin.port or 5432} ({reason}); "
            "start one or point TRIAGE_TEST_PG_URL at one to run these tests"
        )
    return None


# checked before any fixture: the session's trained engine is not built for a module that cannot run
if (why := unreachable(ADMIN_URL)) is not None:
    pytest.skip(why, allow_module_level=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    made = Server(ADMIN_URL)
    try:
        yield made
    finally:
        made.drop_all()


@pytest.fixture(scope="module")
def pg_url(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One migrated database shared by the module's store tests (each test starts from empty tables)."""
    url = server.new_database()
    Store.open(tmp_path_factory.mktemp("unused"), url).close()
    return url


@pytest.fixture
def store(pg_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "unused", pg_url)
    with opened.write() as session:
        session.execute(text(f"TRUNCATE {', '.join(Base.metadata.tables)} RESTART IDENTITY"))  # every table
    yield opened
    opened.close()
    assert not (tmp_path / "unused").exists(), "a PostgreSQL URL must not create a SQLite file"


def replica(url: str, clock: Callable[[], datetime] = utcnow) -> Store:
    """Another replica: its own engine and connection pool on the same database."""
    return Store(make_engine(url), clock=clock)


def schema(engine: Engine) -> dict[str, dict[str, object]]:
    """Tables as the database reports them: columns (generic type, length, nullable), keys, indexes, uniques."""
    found = inspect(engine)
    out: dict[str, dict[str, object]] = {}
    for table in sorted(found.get_table_names()):
        out[table] = {
            "columns": {
                c["name"]: (c["type"]._type_affinity.__name__, getattr(c["type"], "length", None), c["nullable"])
                for c in found.get_columns(table)
            },
            "primary_key": found.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in found.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in found.get_indexes(table)
                if not i.get("duplicates_constraint")  # PostgreSQL lists a unique constraint's index too
            ),
            "unique": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(table)),
        }
    return out


def race(rounds: int, *actions: Callable[[int], object]) -> list[list[object]]:
    """Each round starts every action at once in its own thread; returns what each returned, per round."""
    outcomes: list[list[object]] = []
    for n in range(rounds):
        barrier = threading.Barrier(len(actions))
        got: list[object] = [None] * len(actions)

        def run(i: int, action: Callable[[int], object], n: int, got: list[object], barrier: threading.Barrier) -> None:
            barrier.wait()
            got[i] = action(n)

        threads = [threading.Thread(target=run, args=(i, a, n, got, barrier)) for i, a in enumerate(actions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a racing writer is stuck"
        outcomes.append(got)
    return outcomes


# --- migrations ------------------------------------------------------------------------------------------------


def test_migrations_make_the_same_schema_as_on_sqlite_and_reach_head(server: Server, tmp_path: Path) -> None:
    url = server.new_database()
    on_pg = Store.open(tmp_path / "unused", url)
    on_sqlite = Store.open(tmp_path / "sqlite")
    Store.open(tmp_path / "unused", url).close()  # a second start migrates nothing and breaks nothing
    assert schema(on_pg.engine) == schema(on_sqlite.engine)
    assert {"tickets", "feedback", "audit", "api_keys", "alembic_version"} <= set(schema(on_pg.engine))

    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    said = io.StringIO()  # Config's default stdout is the sys.stdout of alembic's import, maybe closed by now
    config = Config(stdout=said)
    config.set_main_option("script_location", str(MIGRATIONS))
    with on_pg.engine.connect() as conn:
        assert (
            MigrationContext.configure(conn).get_current_revision()
            == ScriptDirectory.from_config(config).get_current_head()
        )
        config.attributes["connection"] = conn
        command.check(config)  # raises if tables.py and the migrations disagree on PostgreSQL
    assert "No new upgrade operations detected" in said.getvalue()
    # and by hand, as alembic.ini documents it: the CLI finds the database through TRIAGE_DATABASE_URL
    cli = subprocess.run(
        [sys.executable, "-m", "alembic", "current"],
        cwd=REPO,
        env={**os.environ, "TRIAGE_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and "(head)" in cli.stdout, cli.stdout + cli.stderr
    on_pg.close()
    on_sqlite.close()


OPEN_WHEN_TOLD = """
import sys
from pathlib import Path
from agents.store.tickets import Store
print("ready", flush=True)
sys.stdin.readline()
Store.open(Path(sys.argv[2]), sys.argv[1]).close()
print("opened", flush=True)
"""


def test_replicas_starting_together_on_an_empty_database_migrate_once(server: Server, tmp_path: Path) -> None:
    url = server.new_database()
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_WHEN_TOLD, url, str(tmp_path / f"unused{i}")],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    try:
        for p in replicas:  # every process has imported the store: the migrations really run at the same moment
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in replicas:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=120) for p in replicas]
    finally:
        for p in replicas:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in replicas] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [(head_revision(),)]
    engine.dispose()


# --- the store -------------------------------------------------------------------------------------------------


def test_store_round_trip_on_postgres(store: Store, trained_service) -> None:
    with store.engine.connect() as conn:  # the database says New York; the store's sessions say UTC
        assert conn.execute(text("SHOW timezone")).scalar() == "UTC"

    # create, with an idempotency key: a replay returns the same tickets, another body under that key is refused
    naive = datetime(2026, 1, 2, 3, 4, 5)  # no zone: UTC, as on SQLite
    tickets = [
        Ticket(title="VPN will not connect", body="GlobalConnect says the gateway is unreachable", created_at=naive),
        Ticket(title="badge reader broken", body="door at warehouse 2 will not open", requester="ana@example.com"),
    ]
    made, replayed = store.create(tickets, "key-1", "hash-1", scope="k", batch=True)
    assert not replayed and [r.status for r in made] == ["received", "received"]
    assert made[0].created_at == naive.replace(tzinfo=UTC) and made[0].created_at.utcoffset() == timedelta(0)
    again, replayed = store.create(tickets, "key-1", "hash-1", scope="k", batch=True)
    assert replayed and [r.id for r in again] == [r.id for r in made]
    with pytest.raises(IdempotencyConflict):
        store.create(tickets, "key-1", "another body", scope="k", batch=True)
    (plain,), replayed = store.create([Ticket(title="printer jams", metadata={"floor": 2, "tags": ["x"]})])
    assert not replayed and store.count_by_status() == {"received": 3}
    fetched = store.get(made[0].id)
    assert fetched.created_at == naive.replace(tzinfo=UTC) and str(fetched.created_at.tzinfo) == "UTC"
    assert store.get(plain.id).metadata == {"floor": 2, "tags": ["x"]}

    # save results (once), through the desk as the service does it
    assert Desk(store, trained_service, ServiceMetrics()).recover() == 3
    triaged = store.get(made[0].id)
    assert triaged.status == "triaged" and triaged.result is not None and triaged.team == "network"
    assert store.save_results({made[0].id: triaged.result}) == 0  # a second result is refused
    assert store.count_by_status() == {"triaged": 3}

    # list with filters, newest first, and the total
    items, total = store.list({"status": "triaged", "team": "network"}, limit=10, offset=0)
    assert [r.id for r in items] == [made[0].id] and total == 1
    items, total = store.list({"status": "triaged", "team": None, "reviewed": False}, limit=2, offset=0)
    assert total == 3 and len(items) == 2 and items[0].created_at >= items[1].created_at
    assert store.list({"status": "received"}, limit=10, offset=0) == ([], 0)
    assert {t.id for t in store.open_tickets(10)} == {made[0].id, made[1].id, plain.id}

    # people: change a ticket, give feedback; both audited, both teach
    review = Review(store, trained_service.kb)
    worked = review.update(made[0].id, TicketPatch(status="in_progress", assignee="diego.ramos"), "bo")
    assert worked.first_response_at is not None and worked.resolved_at is None
    done = review.update(made[0].id, TicketPatch(status="resolved", resolution="restarted the gateway"), "bo")
    assert done.resolved_at is not None and done.first_response_at == worked.first_response_at
    review.update(made[1].id, TicketPatch(team="infra"), "bo")  # a reassignment is a correction too
    verdicts = review.feedback(
        FeedbackIn(ticket_id=made[0].id, action="correct", field="category", value="security"), "ana"
    )
    assert [(v.field, v.label) for v in verdicts] == [("category", "security")] and verdicts[0].id > 0
    assert store.get(made[0].id).category == "security" and store.get(made[0].id).reviewed
    assert {f.ticket_id for f in review.list_feedback()} == {made[0].id, made[1].id}
    rows = {r["id"]: r for r in feedback_training_rows(store)}
    assert set(rows) == {made[0].id, made[1].id} and rows[made[1].id]["team"] == "infra"
    assert store.list({"reviewed": True}, limit=10, offset=0)[1] == 1
    assert store.count_by_status() == {"resolved": 1, "triaged": 2}

    # the audit trail, newest first, by ticket and by kind
    log = store.audit_log(ticket_id=made[0].id)
    assert [a["kind"] for a in log] == ["feedback", "update", "update", "triage"]
    assert log[0]["created_at"].utcoffset() == timedelta(0) and log[0]["id"] > log[1]["id"]
    assert sorted(a["ticket_id"] for a in store.audit_log(kind="triage")) == sorted([made[0].id, made[1].id, plain.id])


# --- two replicas ----------------------------------------------------------------------------------------------


def left_by_a_crash(url: str, count: int) -> list[str]:
    """`count` tickets committed as `received` an hour ago by a replica that then died."""
    crashed = replica(url, clock=lambda: utcnow() - timedelta(hours=1))
    ids = [
        r.id for r in crashed.create([Ticket(title=f"VPN drops {i}", body="GlobalConnect") for i in range(count)])[0]
    ]
    crashed.close()
    return ids


def test_two_replicas_claiming_at_once_claim_every_ticket_exactly_once(store: Store) -> None:
    ids = left_by_a_crash(store.engine.url.render_as_string(hide_password=False), 400)
    url = store.engine.url.render_as_string(hide_password=False)
    replicas = [replica(url), replica(url)]
    claimed: list[list[str]] = [[], []]
    calls = [0, 0]

    def claim_all(i: int) -> None:
        while batch := replicas[i].claim_received(7, max_attempts=3):
            claimed[i].extend(r.id for r in batch)
            calls[i] += 1

    started = time.perf_counter()
    race(1, lambda _: claim_all(0), lambda _: claim_all(1))
    took = time.perf_counter() - started
    counts = Counter(claimed[0] + claimed[1])
    assert [i for i, n in counts.items() if n > 1] == [], "a ticket was claimed twice"
    assert set(counts) == set(ids), "a ticket was never claimed"
    print(f"\n400 tickets, 2 replicas: {len(claimed[0])}+{len(claimed[1])} claimed in {calls} calls, {took:.2f}s")
    assert store.count_by_status() == {"received": 400}  # claimed, not yet triaged: each left to its claimer
    with store.read() as session:
        assert set(session.scalars(select(TicketRow.attempts))) == {1}
    for r in replicas:
        r.close()


def test_a_claim_skips_rows_another_replica_has_locked_and_does_not_wait(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    ids = left_by_a_crash(url, 10)
    oldest = select(TicketRow).order_by(TicketRow.created_at).limit(4).with_for_update()
    other = replica(url)
    with Session(store.engine) as holding, holding.begin():
        held = [r.id for r in holding.scalars(oldest)]  # a replica mid-claim holds the 4 oldest
        got: list[list[str]] = []
        worker = threading.Thread(target=lambda: got.append([r.id for r in other.claim_received(10, 3)]))
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "the claim waited for the other replica's locks"
    assert got == [[i for i in ids if i not in held]]
    assert [r.id for r in other.claim_received(10, 3)] == held  # released unclaimed: nothing is lost
    assert other.claim_received(10, 3) == []  # all claimed a moment ago: each is its claimer's for the lease
    other.close()


def test_a_claim_lasts_its_lease_then_counts_another_attempt(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    now = [utcnow()]
    clocked = replica(url, clock=lambda: now[0])
    assert clocked.claim_lease == timedelta(minutes=15)
    (fresh,), _ = clocked.create([Ticket(title="never claimed")])  # a crash's orphan is claimable at once
    assert [r.id for r in clocked.claim_received(10, max_attempts=3)] == [fresh.id]
    clocked.mark_failed([fresh.id], "triage failed: RuntimeError")
    (ticket,) = left_by_a_crash(url, 1)
    for attempt in (1, 2, 3):
        assert [r.id for r in clocked.claim_received(10, max_attempts=3)] == [ticket], attempt
        assert clocked.claim_received(10, max_attempts=3) == []  # its claimer (a replica that crashed?) has it
        now[0] += timedelta(minutes=16)
    assert clocked.claim_received(10, max_attempts=3) == []
    failed = store.get(ticket)
    assert failed.status == "failed" and failed.needs_human and "3 attempts" in (failed.error or "")
    clocked.close()


def test_two_replicas_saving_results_for_the_same_tickets_save_each_once(store: Store, trained_service) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    ids = left_by_a_crash(url, 200)
    (result,) = trained_service.triage_batch([Ticket(title="VPN drops", body="GlobalConnect")])
    replicas = [replica(url), replica(url)]
    rounds = [ids[i : i + 10] for i in range(0, len(ids), 10)]

    def save(i: int) -> Callable[[int], object]:
        return lambda n: replicas[i].save_results({t: result for t in rounds[n]})

    def fail(n: int) -> None:  # a third replica gives up on some of the same tickets at the same moment
        replicas[1].mark_failed(rounds[n][:3], "triage failed: TimeoutError")

    saved = race(len(rounds), save(0), save(1), fail)
    statuses = store.count_by_status()
    assert sum(s[0] + s[1] for s in saved) == statuses["triaged"] == 200 - statuses.get("failed", 0)  # type: ignore
    triage_audit = Counter(a["ticket_id"] for a in store.audit_log(kind="triage", limit=1000))
    assert set(triage_audit.values()) == {1}, "a ticket was saved twice"
    for ticket_id in ids:
        record = store.get(ticket_id)
        assert (record.status == "triaged") == (ticket_id in triage_audit) == (record.result is not None), record
    for r in replicas:
        r.close()


def test_two_people_resolving_one_ticket_at_once_resolve_it_once(store: Store, trained_service) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    ids = left_by_a_crash(url, 20)
    Desk(store, trained_service, ServiceMetrics()).recover()
    reviews = [Review(replica(url), trained_service.kb) for _ in range(2)]

    def resolve(i: int) -> Callable[[int], object]:
        return lambda n: reviews[i].update(ids[n], TicketPatch(status="resolved"), f"person {i}")

    race(len(ids), resolve(0), resolve(1))
    updates = Counter(a["ticket_id"] for a in store.audit_log(kind="update", limit=1000))
    assert set(updates) == set(ids) and set(updates.values()) == {1}, "both people's change was applied"
    for r in reviews:
        r.store.close()


# --- the HTTP service ------------------------------------------------------------------------------------------


@pytest.fixture
def pg_api(store: Store, trained_service, served_answerer, tmp_path: Path) -> Iterator[Api]:
    url = store.engine.url.render_as_string(hide_password=False)
    yield from make_api(trained_service, served_answerer, tmp_path / "data", database_url=url)


def test_the_http_service_stores_tickets_in_postgres(pg_api: Api, store: Store, tmp_path: Path) -> None:
    body = {"title": "VPN will not connect", "body": "gateway unreachable", "created_at": "2026-01-02T03:04:05"}
    headers = {**pg_api.triage, "Idempotency-Key": "k-1"}
    posted = pg_api.client.post("/v1/tickets", json=body, headers=headers)
    assert posted.status_code == 201, posted.text
    record = posted.json()
    assert record["status"] == "triaged" and record["team"] == "network"
    assert record["created_at"] == "2026-01-02T03:04:05Z"  # naive means UTC, whatever the server's zone
    assert pg_api.client.get(f"/v1/tickets/{record['id']}", headers=pg_api.read).json() == record
    replay = pg_api.client.post("/v1/tickets", json=body, headers=headers)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == record
    page = pg_api.client.get("/v1/tickets", headers=pg_api.read, params={"team": "network"}).json()
    assert [t["id"] for t in page["items"]] == [record["id"]]
    assert store.get(record["id"]).result is not None  # in PostgreSQL, not in a SQLite file
    assert not (tmp_path / "data" / "triage.db").exists()


def test_nul_characters_never_reach_postgres_and_a_nul_in_metadata_is_refused(store: Store) -> None:
    """PostgreSQL refuses NUL in text (a 500 before): the text fields drop it, metadata with one is a clear 422."""
    (record,), _ = store.create([Ticket(title="a\x00b", requester="x\x00@y.example", channel="w\x00eb")])
    got = store.get(record.id)
    assert (got.title, got.requester, got.channel) == ("ab", "x@y.example", "web")
    with pytest.raises(ValidationError, match="NUL character"):
        Ticket(title="t", metadata={"note": "a\x00b"})


def test_a_chunk_out_of_attempts_does_not_hide_the_tickets_after_it(store: Store) -> None:
    """Recovery went on only while a claim returned tickets: a first chunk failed for too many attempts ended it."""
    ids = left_by_a_crash(store.engine.url.render_as_string(hide_password=False), 6)
    with store.write() as session:  # the three oldest have used every attempt
        for row in session.scalars(select(TicketRow).where(TicketRow.id.in_(ids[:3]))):
            row.attempts = 3
    claimed = store.claim_received(3, max_attempts=3)
    assert sorted(r.id for r in claimed) == sorted(ids[3:])
    assert {store.get(i).status for i in ids[:3]} == {"failed"}
