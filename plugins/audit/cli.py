"""``myhibachi audit verify``: check the audit trail's hash chain against its last anchor;
``myhibachi audit anchor``: publish the chain's head (the signed checkpoint file, a log line);
``myhibachi audit rehash``: bring a chain of earlier versions (unkeyed sha256) under the key."""
from __future__ import annotations

import asyncio

import typer

cli = typer.Typer(help="The audit trail of admin actions.", no_args_is_help=True)


@cli.command("verify")
def verify() -> None:
    """Recompute the hash chain; report the first row that does not match (exit code 1)."""
    result = asyncio.run(_run("verify"))
    if result["ok"]:
        typer.echo(f"ok: {result['rows']} rows verified")
        return
    typer.echo(f"broken at row seq={result['seq']} id={result['id']}: {result['reason']} "
               f"({result['rows']} rows before it are intact)")
    raise typer.Exit(1)


@cli.command("anchor")
def anchor() -> None:
    """Verify the chain and write its head to the signed checkpoint file (exit code 1 if broken)."""
    result = asyncio.run(_run("anchor"))
    if not result["ok"]:
        typer.echo(f"not anchored: broken at row seq={result['seq']}: {result['reason']}")
        raise typer.Exit(1)
    typer.echo(f"anchored: {result['rows']} rows, head seq={result['seq']} hash={result['hash']}")
    failed = {name: state for name, state in result["published"].items() if state != "ok"}
    for name, state in result["published"].items():
        typer.echo(f"published to the {name} sink: {state}")
    if failed:
        raise typer.Exit(1)


@cli.command("rehash")
def rehash() -> None:
    """Re-hash rows of the unkeyed sha256 chain (written before the keyed one) under the keyed
    HMAC, as the table's owner, once each row is checked against the chain it was written in;
    changes nothing and exits 1 when a row or the anchored head does not check."""
    result = asyncio.run(_run("rehash"))
    if not result["ok"]:
        typer.echo(f"not re-hashed: broken at row seq={result['seq']}: {result['reason']}")
        raise typer.Exit(1)
    typer.echo(f"re-hashed {result['rehashed']} of {result['rows']} rows")


async def _run(what: str) -> dict:
    from myhibachi.core import Database, Settings, roles
    from myhibachi.plugins.audit import service

    settings = Settings()
    # the re-hash changes rows the app's role may only append: it runs as the tables' owner
    db = Database((roles.owner_url if what == "rehash" else roles.app_url)(settings), pool_size=1)
    try:
        async with db.transaction() as conn:
            if what == "anchor":
                from myhibachi.plugins.audit import plugin

                return await service.anchor(conn, settings, plugin.settings)
            return await getattr(service, what)(conn, settings)
    finally:
        await db.close()
