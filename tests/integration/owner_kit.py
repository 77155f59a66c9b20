"""A process that owns an embedded engine and serves it, as `coex dev` or a worker does: it prints
`opened`, migrates (after `SERVE_AFTER_S`, a worker starting up), writes one message, prints `ready`
and serves until its stdin closes."""

import textwrap

OWNER = textwrap.dedent(
    """
    import asyncio, os, sys
    from runtime.settings import Settings
    from sinks.connect import open_engine
    from sinks.engine_server import serve_engine
    from sinks.migrate import apply_migrations

    async def main() -> None:
        settings = Settings()
        engine = open_engine(settings)
        print("opened", flush=True)
        await asyncio.sleep(float(os.environ.get("SERVE_AFTER_S", "0")))  # a worker starting up
        apply_migrations(engine, settings.clickhouse_database)
        engine.command(
            "INSERT INTO messages (phone_number_id, message_id, sent_at, version) "
            "VALUES ('1065', 'wamid.owned', 1739230955, 256)"
        )
        async with serve_engine(engine, settings):
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        engine.close()

    asyncio.run(main())
    """
)
