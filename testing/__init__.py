"""``myhibachi.testing``: pytest fixtures for testing a plugin, in this repository or outside it.

Installed with ``myhibachi`` and loaded by pytest through the ``pytest11`` entry point, so a
third-party plugin's tests use them with no conftest of their own:

- ``make_app(plugins=[...], flags={"FLAG": True | False | percent}, **settings)``: an app
  with exactly the plugins named (objects or installed entry point names);
- ``client_of(app, **kw)``: an ``httpx.AsyncClient`` on that app (``async with``);
- ``customer(...)``: ``await customer()`` makes a customer through the core and returns a
  :class:`SignedIn` (``id``, ``headers`` with its bearer token);
- ``staff(scopes)``: ``await staff(["tips.read"])`` returns the headers of an API key with
  those scopes;
- ``drain(app)``: ``await drain(app)`` does what a worker would (delivers due events, runs
  pollers and periodic jobs) until nothing is left;
- ``offline_payload(port, payload)``: an offline outbox row's payload with its sealed
  recipient and text opened;
- ``database`` (the session's :class:`~myhibachi.core.db.Database`), ``clean_db`` (the same,
  its tables emptied after the test), ``db_url``, ``settings``, ``home``.

The database is a real PostgreSQL: an embedded one per test session (its data folder
outside pytest's temporary root, which another pytest run as root may reset to 0700), or
the server ``DATABASE_URL`` names; each session makes a fresh database on it, migrated
with every installed plugin's branch. The fixtures are async: run pytest with
pytest-asyncio in auto mode and one event loop per session::

    [tool.pytest.ini_options]
    asyncio_mode = "auto"
    asyncio_default_fixture_loop_scope = "session"
    asyncio_default_test_loop_scope = "session"
"""
from myhibachi.testing.fixtures import SignedIn, all_installed, client_for, offline_payload

__all__ = ["SignedIn", "all_installed", "client_for"]
