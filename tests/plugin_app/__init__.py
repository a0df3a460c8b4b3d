"""A plug-in app outside headwater, as a user would write one: per-key means of a numeric value.

Named in a config as ``headwater.app = "tests.plugin_app:APP"``; it declares its own keys
(``headwater.key-means.*`` in this package's ``reference.conf``) and one small module per layer, and
passes the same contract checks as the built-in apps (``tests/test_contracts.py``).
"""
from headwater.api import App
from headwater.constraints import Interval, ListOf

APP = App(
    name="key-means",
    package=__name__,
    config_section="headwater.key-means",
    input_format="tests.plugin_app.state:KeyValueFormat.from_config",
    state="tests.plugin_app.state:KeyMeans",
    pyfunc="tests.plugin_app.state:KeyMeansPyfunc",
    batch="tests.plugin_app.batch:KeyMeansUpdate",
    speed="tests.plugin_app.speed:KeyMeansSpeedModel",
    serving_model="tests.plugin_app.serving:KeyMeansServingModel",
    serving_routes="tests.plugin_app.serving:bp",
    example="tests.plugin_app.state:example",
    constraints={"headwater.key-means.hyperparams.prior": ListOf(Interval(float, 0))},
)
