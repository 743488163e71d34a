"""A third-party degrader: old-photo sepia toning, mixed in by severity."""

import cv2
import numpy as np
from pydantic import Field

from robustgen import Degrader, Stage, StrictParams

_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)


class Sepia(Degrader):
    name, label, stage = "sepia", "sepia toning", Stage.POSTPROCESSING
    influence = "everything turns brown-yellow, so the original colours of objects can no longer be told"

    class Params(StrictParams):
        amount: float = Field(ge=0, le=1, description="weight of the sepia-toned image")

    def params_for(self, severity, rng):
        return self.Params(amount=round(0.1 + 0.9 * severity, 4))

    def apply(self, image, params, rng):
        toned = cv2.transform(image, _SEPIA)  # saturates to uint8
        return cv2.addWeighted(image, 1.0 - params.amount, toned, params.amount, 0.0)
