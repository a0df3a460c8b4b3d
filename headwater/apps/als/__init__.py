"""The ALS recommender app (Oryx's ALS): collaborative filtering on user-item events, implicit or explicit.

Shared by the layers: the model state and its artifacts (:mod:`.factors`), each entity's values
(:mod:`.ratings`), the exact per-entity solves (:mod:`.solves`), the strength transform both layers apply
(:mod:`.strengths`), the speed layer's fold-in (:mod:`.fold_in`) and prequential losses
(:mod:`.prequential`), the UP messages (:mod:`.updates`), the input events (:mod:`.events`), the Oryx
aggregation the batch layer trains on (:mod:`.aggregation`), the evaluation and baselines
(:mod:`.evaluation`), the pyfunc model (:mod:`.pyfunc`), the MovieLens data (:mod:`.movielens`) and the demo
(:mod:`.demo`). Each layer adapts it in one module: ``batch_layer/als.py``,
``speed_layer/als.py``, ``serving_layer/als.py`` (with ``serving_layer/als_model.py``).
"""
from headwater.api import App
from headwater.constraints import BOOL, HyperParam, Interval

_POSITIVE_NUMBERS = HyperParam(Interval(float, 0, closed_low=False))

APP = App(
    name="als",
    package=__name__,
    config_section="headwater.als",
    input_format="headwater.apps.als.events:ALSFormat.from_config",
    state="headwater.apps.als.factors:ALSFactors",
    pyfunc="headwater.apps.als.pyfunc:ALSPyfuncModel",
    batch="batch_layer.als:ALSUpdate",
    speed="speed_layer.als:ALSSpeedModel",
    serving_model="serving_layer.als_model:ALSServingModel",
    serving_routes="serving_layer.als:bp",
    demo="headwater.apps.als.demo",
    example="headwater.apps.als.example:example",
    constraints={
        "headwater.als.implicit": BOOL,
        "headwater.als.no-known-items": BOOL,
        "headwater.als.log-strength": BOOL,
        "headwater.als.decay.factor": Interval(float, 0, 1, closed_low=False),
        "headwater.als.decay.zero-threshold": Interval(float, 0),
        "headwater.als.iterations": Interval(int, 1),
        "headwater.als.hyperparams.features": HyperParam(Interval(int, 1)),
        "headwater.als.hyperparams.lambda": HyperParam(Interval(float, 0)),
        "headwater.als.hyperparams.alpha": _POSITIVE_NUMBERS,
        "headwater.als.hyperparams.epsilon": _POSITIVE_NUMBERS,
        "headwater.als.hyperparams.bias-lambda": HyperParam(Interval(float, 0)),
    },
)
