"""Report ingestion, in the stages a reader follows:

1. verify.py: size, JSON, schema, agent, signature, freshness, and replay (the same report_id again);
2. plan.py: what a host report writes: judged by the collector's baseline, its rows, its drift and events;
3. write.py: the batch's SQL, derived from the store's tables, in one transaction per batch;
ingestor.py takes each POST through them (with groupcommit.py's batching); inventory.py stores the small
envelopes (inventory, utilisation).
"""
from __future__ import annotations

from .ingestor import Ingestor
from .plan import Pending, ResultFacts
from .verify import Refused, canonical_digest, chain

__all__ = ["Ingestor", "Pending", "Refused", "ResultFacts", "canonical_digest", "chain"]
