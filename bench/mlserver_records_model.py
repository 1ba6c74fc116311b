"""The benchmark model of bench/score_http_vs_requests.py --server mlserver, as an
MLServer runtime: the talk's JSON records protocol on a custom endpoint POST /records
(a JSON array of {"features": [...]} rows -> [{"score": 0.5 * sum}, ...]), with
DELAY_S seconds of modelled inference per request (asyncio.sleep: other requests go on).
"""

import asyncio
import json
import os

from fastapi import Request, Response
from mlserver import MLModel
from mlserver.handlers import custom_handler

DELAY_S = float(os.environ.get("DLPREP_BENCH_DELAY", "0"))


class Records(MLModel):
    async def load(self) -> bool:
        return True

    @custom_handler(rest_path="/records")
    async def records(self, request: Request) -> Response:
        rows = json.loads(await request.body())
        if DELAY_S:
            await asyncio.sleep(DELAY_S)
        out = [{"score": 0.5 * sum(r["features"])} for r in rows]
        return Response(json.dumps(out), media_type="application/json")
