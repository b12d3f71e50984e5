"""The throughput baseline: a FastAPI app that accepts the same hook call and answers no cards.

It parses the JSON body (as any real service must) and does nothing else, so the ratio against
it measures what pgx-loop's own work costs: validation, results, rules, cards, durable logging.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/cds-services/{service_id}")
async def call_service(service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"cards": []}
