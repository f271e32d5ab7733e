"""``myhibachi loyalty verify``: check that every balance is the sum of its ledger."""
from __future__ import annotations

import asyncio

import typer

cli = typer.Typer(help="Loyalty points.", no_args_is_help=True)


@cli.command("verify")
def verify() -> None:
    """Compare each account's balance with its ledger and open lots (exit code 1 on a mismatch)."""
    result = asyncio.run(_verify())
    for bad in result["mismatches"]:
        typer.echo(f"mismatch: {bad}")
    if result["mismatches"]:
        raise typer.Exit(1)
    typer.echo(f"ok: {result['accounts']} accounts agree with their ledgers")


async def _verify() -> dict:
    from myhibachi.core import Database, Settings, resolve_url
    from myhibachi.plugins.loyalty.service import verify as check

    db = Database(resolve_url(Settings()), pool_size=1)
    try:
        async with db.read() as conn:
            return await check(conn)
    finally:
        await db.close()
