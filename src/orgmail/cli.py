"""The `orgmail` command: serve, migrate, and the operator's verbs over the same core functions."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from orgmail.config import Settings, SettingsError, load_settings, printable_database_url, printable_url
from orgmail.db.session import create_engine, create_session_factory, upgrade_database
from orgmail.errors import MailboxTaken, OrgmailError

app = typer.Typer(
    help="orgmail: transactional email and mailbox provisioning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
org_app = typer.Typer(help="Organizations.", no_args_is_help=True)
key_app = typer.Typer(help="API keys.", no_args_is_help=True)
member_app = typer.Typer(help="Org members.", no_args_is_help=True)
domain_app = typer.Typer(help="Sending and mailbox domains.", no_args_is_help=True)
webhook_app = typer.Typer(help="Webhooks: where an org's events are POSTed.", no_args_is_help=True)
app.add_typer(org_app, name="org")
app.add_typer(key_app, name="key")
app.add_typer(member_app, name="member")
app.add_typer(domain_app, name="domain")
app.add_typer(webhook_app, name="webhook")

T = TypeVar("T")


# Exit statuses: 0 done, 1 a part could not be reached (or a check failed), 2 the settings are wrong.
EXIT_UNREACHABLE = 1
EXIT_BAD_SETTINGS = 2


def _settings() -> Settings:
    """The settings, read once; if they are wrong, every problem on stderr (one line each) and exit 2."""
    try:
        return load_settings()
    except SettingsError as error:
        for problem in error.problems:
            typer.secho(f"error: {problem}", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_BAD_SETTINGS) from None


@contextmanager
def _database_failures(settings: Settings, *, migrating: bool = False) -> Iterator[None]:
    """A database that cannot be reached (or refuses the migration) is one line on stderr and exit 1."""
    try:
        yield
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        from orgmail.check import database_unreachable_reason

        where = f"the database at {printable_database_url(settings.database_url)} (ORGMAIL_DATABASE_URL)"
        reason = database_unreachable_reason(exc)
        if reason is not None:
            message = f"cannot reach {where}: {reason}"
        elif migrating and isinstance(exc, DBAPIError):  # e.g. the user may not create tables
            refusal = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
            message = f"cannot migrate {where}: {refusal}"
        else:
            raise
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from None


def _migrated_settings() -> Settings:
    """The settings, with the database reached and migrated: what every command that opens it needs."""
    from orgmail.check import reach_database

    settings = _settings()
    with _database_failures(settings, migrating=True):
        asyncio.run(reach_database(settings, create=True))  # in seconds; Alembic's engine waits a minute
        upgrade_database(settings.database_url)
    return settings


def _with_session(work: Callable[[Any, Settings], Awaitable[T]]) -> T:
    """Run one unit of work against the configured database (migrated first)."""
    settings = _migrated_settings()

    async def runner() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with create_session_factory(engine)() as session:
                return await work(session, settings)
        finally:
            await engine.dispose()

    try:
        with _database_failures(settings):
            return asyncio.run(runner())
    except OrgmailError as error:
        typer.secho(f"error: {error.code}: {error.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8025,
    workers: Annotated[int, typer.Option(help="Processes on one port (one per core).")] = 1,
    keep_alive: Annotated[
        int, typer.Option(help="Seconds an idle HTTP connection stays open; keep it above your clients' and proxy's.")
    ] = 75,
    parent: Annotated[
        int | None,
        typer.Option(hidden=True, help="Serve as an API worker of the `serve` with this process id (api_workers)."),
    ] = None,
) -> None:
    """Migrate the database, then serve the API (SIGTERM: stop accepting, finish in-flight sends), with
    webhook delivery in a process of its own beside the workers (ORGMAIL_WEBHOOK_NICE)."""
    from orgmail import api_workers
    from orgmail.delivery_process import delivery_process

    if parent is not None:  # one of the `--workers`: `serve` migrated and delivers
        _serve_api(host=host, port=port, keep_alive=keep_alive, worker_of=parent)
        return
    balanced_workers = workers > 1 and api_workers.REUSE_PORT_BALANCES
    if balanced_workers:
        try:
            api_workers.check_port_free(host, port)
        except api_workers.PortInUse as error:
            typer.secho(f"error: port_in_use: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
    settings = _migrated_settings()
    typer.echo(
        f"orgmail on http://{host}:{port}  (data: {settings.data_dir}, relay: {printable_url(settings.relay_url)})"
    )
    delivery = None
    if settings.webhook_delivery:  # one process beside the workers, at a lower priority (delivery_process)
        delivery = delivery_process(nice=settings.webhook_nice)
        delivery.start()
        os.environ["ORGMAIL_WEBHOOK_DELIVERY"] = "0"  # what the workers inherit: they leave it to that process
        typer.echo(f"webhook delivery in process {delivery.pid}, nice +{settings.webhook_nice}")
    try:
        if balanced_workers:
            typer.echo(f"{workers} API workers, a listening socket each (SO_REUSEPORT)")
            api_workers.run(host=host, port=port, workers=workers, keep_alive=keep_alive)
        else:
            _serve_api(host=host, port=port, keep_alive=keep_alive, workers=workers)
    finally:
        if delivery is not None:
            delivery.stop()


def _serve_api(*, host: str, port: int, keep_alive: int, workers: int = 1, worker_of: int | None = None) -> None:
    """uvicorn: on its own, with its own `workers`, or (`worker_of`) as one of `api_workers`' on a socket of its own."""
    import uvicorn

    from orgmail import api_workers
    from orgmail.supervised import stop_when_orphaned

    config: dict[str, Any] = dict(
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # A client that reuses a connection just as the server closes it for idleness gets a reset
        # (httpx and many pools keep idle connections 5 s, uvicorn's own default): outlive them.
        timeout_keep_alive=keep_alive,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=api_workers.GRACEFUL_SHUTDOWN_SECONDS,
        log_level="info",
        access_log=False,
    )
    if worker_of is None:
        uvicorn.run("orgmail.app:create_app_from_env", **config)
        return
    server = uvicorn.Server(uvicorn.Config("orgmail.app:create_app_from_env", **config))

    def stop() -> None:  # as on SIGTERM: the sends in flight finish
        server.should_exit = True

    stop_when_orphaned(worker_of, stop)
    server.run(sockets=[api_workers.listening_socket(host, port)])


@app.command()
def migrate() -> None:
    """Apply database migrations up to the newest."""
    _migrated_settings()
    typer.echo("database is up to date")


@app.command()
def check() -> None:
    """Try every part the configuration names (database, relay, DNS, Dovecot, data folder), one line
    each; exit status 1 if any failed, 2 if the settings are wrong. It does not migrate the database."""
    from orgmail.check import check_all

    settings = _settings()
    colors = {"ok": typer.colors.GREEN, "warn": typer.colors.YELLOW, "fail": typer.colors.RED}
    results = asyncio.run(check_all(settings))
    for result in results:
        typer.secho(result.line, fg=colors[result.status])
    if any(result.status == "fail" for result in results):
        raise typer.Exit(EXIT_UNREACHABLE)


@app.command()
def demo(
    domain: Annotated[str, typer.Option(help="Demo domain (marked verified without DNS).")] = "demo.example.com",
) -> None:
    """Create a demo org with an API key, a verified domain, members, a mailbox and a suppression.

    DEVELOPMENT ONLY: the domain is marked verified without a DNS check. Prints the API key once.
    """
    from orgmail.core import domains, mailboxes, members, orgs, suppressions
    from orgmail.mail.dkim import KeyVault
    from orgmail.mail.store import MaildirStore

    async def work(session, settings):
        if await mailboxes.address_taken(session, address=f"hello@{domain}"):
            raise MailboxTaken(
                f"A demo already exists on {domain}; run `orgmail demo --domain another.example.com`, "
                "or `orgmail key create --org ORG_ID` for a new key to the existing one."
            )
        await session.rollback()  # end the read; each core call below is its own transaction
        org = await orgs.create_org(session, name="Demo")
        _api_key, key = await orgs.create_api_key(session, org_id=org.id, name="demo")
        added = await domains.add_domain(session, org_id=org.id, name=domain, vault=KeyVault(settings.secret_key))
        await domains.mark_verified(session, org_id=org.id, domain_id=added.id)
        for user_id, name in (("alice", "Alice Liddell"), ("bob", "Bob Builder")):
            await members.add_member(
                session, org_id=org.id, user_id=user_id, name=name, email=f"{user_id}@{added.name}"
            )
        mailbox, password = await mailboxes.create_mailbox(
            session,
            org_id=org.id,
            store=MaildirStore.from_settings(settings),
            address=f"hello@{added.name}",
            display_name="Hello",
            assigned_user_id="alice",
        )
        await suppressions.add_suppression(session, org_id=org.id, email="bounced@example.com", note="demo")
        return org, key, added, mailbox, password

    org, key, added, mailbox, password = _with_session(work)
    typer.secho("development only: the demo domain was marked verified without DNS", fg=typer.colors.YELLOW, err=True)
    _print(
        {
            "orgId": org.id,
            "apiKey": key,
            "domain": added.name,
            "mailbox": {"id": mailbox.id, "address": mailbox.address, "password": password},
        }
    )


@org_app.command("create")
def org_create(name: str) -> None:
    """Create an organization."""
    from orgmail.core.orgs import create_org

    async def work(session, _settings):
        return await create_org(session, name=name)

    org = _with_session(work)
    _print({"id": org.id, "name": org.name, "createdAt": org.created_at.isoformat()})


@key_app.command("create")
def key_create(org: Annotated[str, typer.Option("--org", help="Org id (org_…).")], name: str | None = None) -> None:
    """Create an API key for an org; the key is printed once."""
    from orgmail.core.orgs import create_api_key

    async def work(session, _settings):
        return await create_api_key(session, org_id=org, name=name)

    api_key, secret = _with_session(work)
    _print({"id": api_key.id, "orgId": api_key.org_id, "key": secret})


@member_app.command("add")
def member_add(
    org: Annotated[str, typer.Option("--org", help="Org id.")],
    user_id: str,
    email: str | None = None,
    name: str | None = None,
) -> None:
    """Add a member (a user id from your identity system) to an org."""
    from orgmail.core.members import add_member

    async def work(session, _settings):
        return await add_member(session, org_id=org, user_id=user_id, email=email, name=name)

    member = _with_session(work)
    _print({"userId": member.user_id, "orgId": member.org_id})


@domain_app.command("add")
def domain_add(name: str, org: Annotated[str, typer.Option("--org", help="Org id.")]) -> None:
    """Add a domain (new DKIM keys) and print the DNS records to publish before `domain verify`."""
    from orgmail.api.schemas import DnsRecord, Domain, DomainWithRecords
    from orgmail.core.domains import add_domain, get_domain
    from orgmail.mail.dkim import KeyVault

    async def work(session, settings):
        domain = await add_domain(session, org_id=org, name=name, vault=KeyVault(settings.secret_key))
        return await get_domain(session, org_id=org, domain_id=domain.id)

    view = _with_session(work)
    added = DomainWithRecords(
        domain=Domain.model_validate(view), records=[DnsRecord.model_validate(r) for r in view.records]
    )
    _print(added.model_dump(mode="json", by_alias=True))
    typer.echo(f"Publish the required TXT records, then run: orgmail domain verify {view.id} --org {org}", err=True)


@domain_app.command("verify")
def domain_verify(domain_id: str, org: Annotated[str, typer.Option("--org", help="Org id.")]) -> None:
    """Check the domain's records in DNS now; exit status 1 while any required record is missing."""
    from orgmail.api.schemas import DnsCheck, Domain, DomainVerified
    from orgmail.core.domains import verify_domain
    from orgmail.mail.dns import DnsTxtResolver

    async def work(session, settings):
        resolver = DnsTxtResolver(settings.dns_nameservers, timeout_seconds=settings.dns_timeout_seconds)
        return await verify_domain(session, org_id=org, domain_id=domain_id, resolver=resolver)

    result = _with_session(work)
    verified = DomainVerified(
        domain=Domain.model_validate(result.domain), checks=[DnsCheck.model_validate(c) for c in result.checks]
    )
    _print(verified.model_dump(mode="json", by_alias=True))
    missing = [check.name for check in result.checks if not check.ok]
    if missing:
        typer.secho(f"not yet published as expected: {', '.join(missing)}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)
    typer.secho(f"{result.domain.name} is verified", fg=typer.colors.GREEN, err=True)


@domain_app.command("mark-verified")
def domain_mark_verified(domain_id: str, org: Annotated[str, typer.Option("--org", help="Org id.")]) -> None:
    """DEVELOPMENT ONLY: mark a domain verified without checking DNS."""
    from orgmail.core.domains import mark_verified

    async def work(session, _settings):
        return await mark_verified(session, org_id=org, domain_id=domain_id)

    domain = _with_session(work)
    typer.secho("development only: DNS was not checked", fg=typer.colors.YELLOW, err=True)
    _print({"id": domain.id, "name": domain.name, "status": domain.status})


@webhook_app.command("create")
def webhook_create(
    url: str,
    org: Annotated[str, typer.Option("--org", help="Org id.")],
    event: Annotated[
        list[str] | None, typer.Option("--event", help="An event type to receive (repeatable; default: every type).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the endpoint is for.")] = None,
) -> None:
    """Add a webhook; its signing secret is printed once."""
    from orgmail.api.schemas import Webhook, WebhookCreated
    from orgmail.core.orgs import require_org
    from orgmail.core.webhooks import create_webhook
    from orgmail.mail.dkim import KeyVault

    async def work(session, settings):
        await require_org(session, org)
        await session.rollback()
        return await create_webhook(
            session,
            org_id=org,
            url=url,
            events=event or None,
            description=description,
            vault=KeyVault(settings.secret_key),
            allow_private=settings.webhook_allow_private,
        )

    created = _with_session(work)
    answer = WebhookCreated(webhook=Webhook.model_validate(created.webhook), secret=created.secret)
    _print(answer.model_dump(mode="json", by_alias=True))


@webhook_app.command("list")
def webhook_list(org: Annotated[str, typer.Option("--org", help="Org id.")]) -> None:
    """An org's webhooks, newest first (every one, no secrets)."""
    from orgmail.api.schemas import Webhook
    from orgmail.core.webhooks import list_webhooks

    async def work(session, _settings):
        found, cursor = [], None
        while True:
            page = await list_webhooks(session, org_id=org, limit=200, cursor=cursor)
            found.extend(page.items)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    webhooks = _with_session(work)
    _print([Webhook.model_validate(w).model_dump(mode="json", by_alias=True) for w in webhooks])


@webhook_app.command("deliver")
def webhook_deliver(
    nice: Annotated[
        int,
        typer.Option(
            min=0, max=19, help="Lower this process's CPU priority by this much (and its session's, if it leads one)."
        ),
    ] = 0,
    parent: Annotated[
        int | None, typer.Option(help="Stop when the process with this id is no longer this one's parent.")
    ] = None,
) -> None:
    """Deliver the webhook queue until SIGTERM or Ctrl-C, as `orgmail serve` does beside its workers.

    For delivery on cores or a host of its own: run `orgmail serve` with ORGMAIL_WEBHOOK_DELIVERY=0 and
    this beside it on the same database (several may run: they share the queue and make each attempt once).
    """
    import logging
    import signal

    import uvloop

    from orgmail.api.webhooks import EVENT_DATA
    from orgmail.core import webhook_dispatcher
    from orgmail.cpu_priority import lower_cpu_priority
    from orgmail.mail.dkim import KeyVault
    from orgmail.supervised import stop_when_orphaned

    lower_cpu_priority(nice)
    settings = _migrated_settings()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def deliver() -> None:
        stopping, loop = asyncio.Event(), asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)

        def stop() -> None:  # the first signal stops gracefully; a second one has its default effect
            for signal_number in signals:
                loop.remove_signal_handler(signal_number)
            stopping.set()

        for signal_number in signals:
            loop.add_signal_handler(signal_number, stop)
        engine = create_engine(settings.database_url)
        resources = webhook_dispatcher.Resources(engine, settings, KeyVault(settings.secret_key))
        dispatcher = await webhook_dispatcher.start(resources, event_data=EVENT_DATA)
        typer.echo(f"delivering webhooks from {printable_database_url(settings.database_url)}", err=True)
        if parent is not None:
            stop_when_orphaned(parent, lambda: loop.call_soon_threadsafe(stopping.set))
        try:
            await stopping.wait()
        finally:
            await dispatcher.stop()  # attempts in flight finish; the rest wait in the queue
            await engine.dispose()
        typer.echo("stopped", err=True)

    uvloop.run(deliver())  # the event loop `orgmail serve` runs on


@app.command("dovecot-config")
def dovecot_config(
    out: Annotated[Path, typer.Option("--out", help="Folder for dovecot.conf, its SQL file and run state.")],
    listen: Annotated[str, typer.Option(help="Address IMAP and LMTP listen on.")] = "127.0.0.1",
    imap_port: Annotated[int, typer.Option(help="IMAP port.")] = 143,
    lmtp_port: Annotated[int, typer.Option(help="LMTP port (where Postfix delivers).")] = 24,
) -> None:
    """Write a Dovecot config that serves the mailboxes over IMAP and LMTP from this database."""
    from orgmail.mail.dovecot import folder_blocking_mail_user, write_config

    settings = _migrated_settings()  # Dovecot reads the dovecot_users view
    files = write_config(settings, out_dir=out, listen=listen, imap_port=imap_port, lmtp_port=lmtp_port)
    typer.echo(f"wrote {files.config} and {files.sql_config} (mode 0600)")
    blocking = folder_blocking_mail_user(settings)
    if blocking is not None:
        typer.secho(
            f"warning: the mail user (uid {settings.mail_uid}) cannot enter {blocking}, so Dovecot cannot reach "
            "the Maildirs: move the data folder (ORGMAIL_DATA_DIR) or set ORGMAIL_MAIL_USER (docs/dovecot.md)",
            fg=typer.colors.YELLOW,
            err=True,
        )
    typer.echo(f"run:  dovecot -F -c {files.config}")
    typer.echo(f"and let deletes disconnect live sessions:  ORGMAIL_DOVECOT_CONFIG={files.config}")


@app.command("postfix-config")
def postfix_config(
    out: Annotated[Path, typer.Option("--out", help="Folder for the main.cf fragment and its lookup tables.")],
    lmtp: Annotated[str, typer.Option(help="Dovecot's LMTP, where accepted mail goes.")] = "127.0.0.1:24",
    inbound: Annotated[
        str | None,
        typer.Option(help="orgmail's inbound listener, for the bounce domain [default: ORGMAIL_INBOUND_LISTEN]."),
    ] = None,
) -> None:
    """Write what a Postfix needs to be the MX of the orgs' domains (and of the bounce domain)."""
    from orgmail.db.postfix_copy import rebuild, sqlite_database
    from orgmail.mail.postfix import (
        PostfixConfigError,
        folder_blocking_postfix,
        parse_host_port,
        readable_by_postfix,
        write_config,
    )

    settings = _settings()
    try:
        lmtp_at = parse_host_port(lmtp, option="--lmtp")
        inbound_at = parse_host_port(inbound, option="--inbound") if inbound else settings.inbound_listen
        out = out.resolve()
        blocking = folder_blocking_postfix(out / "x")
        if blocking is not None:
            raise PostfixConfigError(f"Postfix (group postfix) cannot enter {blocking}: choose another --out")
        settings = _migrated_settings()  # the views Postfix reads come with the migrations
        files = write_config(settings, out_dir=out, lmtp=lmtp_at, inbound=inbound_at)
        database = sqlite_database(settings.database_url)
        if database is not None:
            with _database_failures(settings):
                copy = rebuild(database, create=True)
            assert copy is not None
            readable_by_postfix(copy)
            blocking = folder_blocking_postfix(copy)
            if blocking is not None:
                raise PostfixConfigError(
                    f"Postfix (group postfix) cannot enter {blocking}, so it cannot read {copy}: "
                    "let it (chmod o+x or g+x with group postfix) or move the data folder (ORGMAIL_DATA_DIR)"
                )
    except PostfixConfigError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_BAD_SETTINGS) from None
    typer.echo(f"wrote {files.main_cf} and {', '.join(path.name for path in files.tables)} (mode 0640, group postfix)")
    if files.lookup_copy is not None:
        typer.echo(f"Postfix reads {files.lookup_copy}, which orgmail keeps up to date")
    if files.holds_password:
        typer.echo("the .cf tables hold the database password: keep them 0640, group postfix")
    typer.echo(f"apply:  grep -v '^#' {files.main_cf} | xargs -d '\\n' postconf -e && postfix reload")


@app.command()
def purge() -> None:
    """Remove deleted mailboxes from the trash once ORGMAIL_MAILBOX_RETENTION days have passed
    (and move any Maildir whose mailbox is gone to the trash first)."""
    from orgmail.core.mailboxes import tidy_mail_store
    from orgmail.mail.store import MaildirStore

    async def work(session, settings):
        return await tidy_mail_store(session, store=MaildirStore.from_settings(settings))

    result = _with_session(work)
    _print({"purged": result.purged, "orphansMovedToTrash": result.orphans_retired})


if __name__ == "__main__":  # pragma: no cover
    app()
