"""The MLServer runtime of the example: a logistic-regression churn model.

MLServer imports this file from the model repository (see run.sh) and calls load() once
and predict() per request. Input "features": FP32 [B, 14, 12] (or [B, 168]), the
windows written by `dlprep windows`; output "churn_probability": FP64 [B].
"""

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

from churn_model import predict


class ChurnLogistic(MLModel):
    async def load(self) -> bool:
        w = np.load(await get_model_uri(self.settings))
        self.mean, self.std, self.coef, self.bias = (
            w["mean"], w["std"], w["coef"], float(w["bias"]))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = {i.name: i for i in payload.inputs}
        if "features" not in inputs:
            raise InferenceError("churn expects an input named 'features'")
        x = NumpyCodec.decode_input(inputs["features"])
        x = x.reshape(x.shape[0], -1).astype(np.float64)
        if x.shape[1] != self.coef.shape[0]:
            raise InferenceError(
                f"churn expects {self.coef.shape[0]} features per row, got {x.shape[1]}")
        p = predict(x, self.mean, self.std, self.coef, self.bias)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("churn_probability", p)])

