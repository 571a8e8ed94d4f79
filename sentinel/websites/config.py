"""The collector's website-monitoring settings (`websites:` in collector.yaml; docs/websites.md)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WebsiteSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="fetch declared websites from this collector (rounds and "
                                                     "availability visits); off unless its operator turns it on")
    schedules: bool = Field(default=True, description="with websites on: run the scheduled rounds and visits here")
    concurrency: int = Field(default=2, ge=1, le=32, description="websites crawled at the same time")
    sync_seconds: float = Field(default=60, ge=1, le=3600, description="how often the websites are reloaded")
