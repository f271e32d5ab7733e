"""``myhibachi audit verify``: check the audit trail's hash chain."""
from __future__ import annotations

import asyncio

import typer

cli = typer.Typer(help="The audit trail of admin actions.", no_args_is_help=True)


@cli.command("verify")
def verify() -> None:
    """Recompute the hash chain; report the first row that does not match (exit code 1)."""
    result = asyncio.run(_verify())
    if result["ok"]:
        typer.echo(f"ok: {result['rows']} rows verified")
        return
    typer.echo(f"broken at row seq={result['seq']} id={result['id']}: {result['reason']} "
               f"({result['rows']} rows before it are intact)")
    raise typer.Exit(1)


async def _verify() -> dict:
    from myhibachi.core import Database, Settings, resolve_url
    from myhibachi.plugins.audit.service import verify as verify_chain

    db = Database(resolve_url(Settings()), pool_size=1)
    try:
        async with db.read() as conn:
            return await verify_chain(conn)
    finally:
        await db.close()
