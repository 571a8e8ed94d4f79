"""The collector: REST API (FastAPI), agent enrollment, signed report ingestion, drift and events.

Entry points: `sentinel.collector.app.create_app(settings)` and the `sentinel collector` command
(sentinel/cli_collector.py). The agent-facing contract is docs/wire.md.
"""
