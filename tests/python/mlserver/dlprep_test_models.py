"""MLServer runtimes for the score-http integration test (test_score_http_mlserver.py).

Loaded by a real `mlserver start` from .venv-mlserver (MLServer 1.7.1 from PyPI), which
imports this file from the model repository folder. Inputs are decoded with MLServer's
own NumpyCodec, so the test checks how a real V2 server reads what dlprep sends.

* linear: input "features" FP32 [B, 8] -> "score" FP64 [B] = features @ W,
  "pair" FP32 [B, 2] = [sum, max] per row. Any other shape: InferenceError (HTTP 400).
* mixed: inputs "id" INT64 [B], "text" BYTES [B], "weight" FP64 [B] ->
  "row_id" INT64 [B] = id, "text_bytes" INT64 [B] = UTF-8 length of text,
  "scaled" FP64 [B] = weight * id.
"""

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

DIM = 8
W = (np.arange(DIM, dtype=np.float64) - 3.5) / 4.0


def _inputs(payload: InferenceRequest):
    return {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}


class Linear(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = _inputs(payload).get("features")
        if x is None or x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != DIM:
            got = None if x is None else f"{x.dtype} {list(x.shape)}"
            raise InferenceError(f"linear expects features FP32 [B, {DIM}], got {got}")
        score = x.astype(np.float64) @ W
        pair = np.stack([x.sum(1), x.max(1)], axis=1).astype(np.float32)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("score", score),
                     NumpyCodec.encode_output("pair", pair)])


class Mixed(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        v = _inputs(payload)
        ids = v["id"].reshape(-1).astype(np.int64)
        text = v["text"].reshape(-1)
        weight = v["weight"].reshape(-1).astype(np.float64)
        nbytes = np.array([len(t) if isinstance(t, bytes) else len(str(t).encode())
                           for t in text], dtype=np.int64)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("row_id", ids),
                     NumpyCodec.encode_output("text_bytes", nbytes),
                     NumpyCodec.encode_output("scaled", weight * ids)])
