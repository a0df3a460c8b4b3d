"""The k-means clustering app (Oryx's k-means) over the numeric predictors of ``headwater.input-schema``.

Shared by the layers: the clusters and their artifacts (:mod:`.clusters`), the assignment and
streaming-update math (:mod:`.streaming`), the UP messages (:mod:`.updates`), the clustering quality
measures (:mod:`.quality`), the pyfunc model (:mod:`.pyfunc`) and the demo (:mod:`.demo`). Each layer
adapts it in one module: ``batch_layer/kmeans.py``, ``speed_layer/kmeans.py``, ``serving_layer/kmeans.py``.
"""
from headwater.api import App
from headwater.constraints import HyperParam, Interval, Optional, Options

APP = App(
    name="kmeans",
    package=__name__,
    config_section="headwater.kmeans",
    input_format="headwater.input_format:SchemaCSVFormat.from_config",
    state="headwater.apps.kmeans.clusters:KMeansClusters",
    pyfunc="headwater.apps.kmeans.pyfunc:KMeansPyfuncModel",
    batch="batch_layer.kmeans:KMeansUpdate",
    speed="speed_layer.kmeans:KMeansSpeedModel",
    serving_model="serving_layer.kmeans:KMeansServingModel",
    serving_routes="serving_layer.kmeans:bp",
    demo="headwater.apps.kmeans.demo",
    example="headwater.apps.kmeans.example:example",
    constraints={
        "headwater.kmeans.iterations": Interval(int, 1),
        "headwater.kmeans.initialization-strategy": Options(("k-means||", "random"), any_case=True),
        "headwater.kmeans.evaluation-strategy": Options(("silhouette", "davies-bouldin", "dunn", "sse"), any_case=True),
        "headwater.kmeans.silhouette-sample": Interval(int, 2),
        "headwater.kmeans.decay-factor": Interval(float, 0, 1),
        "headwater.kmeans.half-life": Optional(Interval(float, 0, closed_low=False)),
        "headwater.kmeans.time-unit": Options(("batches", "points")),
        "headwater.kmeans.dying-cluster-share": Optional(Interval(float, 0, 1)),
        "headwater.kmeans.hyperparams.k": HyperParam(Interval(int, 2)),
    },
)
