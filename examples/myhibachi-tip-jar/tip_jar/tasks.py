"""Background and periodic tasks of tip_jar (huey)."""


def setup(huey, ctx) -> None:
    """Declare tasks with ``@huey.task()`` or ``@huey.periodic_task(...)`` inside this function."""
