"""What an app author reads: the App description and the three small protocols the layers' runners call.

An app (Oryx's "application": ALS, k-means, random forests, or one of your own) is a package with its
model state, its math and its update messages (the app tier, shared by every layer) plus one small
adapter per layer. It describes itself with an :class:`App` and registers it as an entry point in the
``headwater.apps`` group (or a config names it as ``"package.module:APP"``)::

    [options.entry_points]
    headwater.apps =
        my-app = my_package:APP

The runners own Spark, Kafka, MLflow and the threads; an app never touches them:

- batch (``batch_layer/runner.py`` + ``ml_update.py``): subclass :class:`BatchApp`;
- speed (``speed_layer/runner.py``): a class following :class:`SpeedModel`;
- serving (``serving_layer/app.py`` + ``model_manager.py``): a class following :class:`ServingModel` and a
  Flask blueprint with the app's endpoints.

The smallest speed model, a counter whose UP payloads carry the total (absolute, so applying one twice
is harmless):

>>> class Counter:
...     def __init__(self, n=0): self.n = n
...     def learn_many(self, parsed): self.n += parsed.num_rows; return [self.n]
...     def apply_update(self, payload): self.n = payload
...     def copy(self): return Counter(self.n)
...     def state_summary(self): return {"n": self.n}
>>> import pyarrow as pa
>>> speed, serving = Counter(), Counter()
>>> for payload in speed.learn_many(pa.table({"x": [1, 2, 3]})):
...     serving.apply_update(payload)
>>> speed.state_summary() == serving.state_summary() == {"n": 3}
True
"""
from __future__ import annotations

import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: the API module imports nothing of the framework at run time
    import numpy as np
    import pyarrow as pa

    from headwater.config import Config
    from headwater.registry import RegisteredModel


@dataclass(frozen=True)
class App:
    """One app: where its pieces are, by import path (``"module:attribute"``), so a layer imports only its own.

    ``config_section`` (``headwater.als``) holds the app's keys; ``reference.conf`` in ``package`` declares
    them with their defaults, and ``constraints`` checks their values at start-up.

    >>> app = App(name="demo", package="headwater.apps.als", config_section="headwater.demo",
    ...           input_format="headwater.apps.als.events:ALSFormat.from_config",
    ...           state="headwater.apps.als.factors:ALSFactors", pyfunc="headwater.apps.als.pyfunc:ALSPyfuncModel",
    ...           batch="batch_layer.als:ALSUpdate", speed="speed_layer.als:ALSSpeedModel",
    ...           serving_model="serving_layer.als_model:ALSServingModel", serving_routes="serving_layer.als:bp")
    >>> app.resolve("state").__name__
    'ALSFactors'
    """

    name: str
    package: str
    config_section: str
    input_format: str      # callable(config) -> an input format (``parse(lines) -> ParsedLines``)
    state: str             # the app tier's model class, with ``save(directory)`` and ``load(directory)``
    pyfunc: str            # the mlflow.pyfunc.PythonModel class that loads a saved state
    batch: str             # a BatchApp subclass
    speed: str             # a SpeedModel class
    serving_model: str     # a ServingModel class
    serving_routes: str    # a flask.Blueprint
    demo: str | None = None     # module with history_lines(app), show_live_learning(config, base_url), EXAMPLE_PATH
    example: str | None = None  # callable() -> AppExample, for the shared contract checks
    constraints: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self, part: str) -> Any:
        """Import the object a field names (``app.resolve("speed")`` is the speed model class)."""
        path = getattr(self, part)
        if path is None:
            raise LookupError(f"app {self.name!r} has no {part}")
        return pkgutil.resolve_name(path)

    def reference_conf(self) -> str:
        """The text of the app's ``reference.conf`` ("" for an app with no keys of its own), read through
        importlib.resources, so headwater imported from a zip finds it too."""
        resource = files(self.package).joinpath("reference.conf")
        return resource.read_text() if resource.is_file() else ""

    def make_input_format(self, config: Config):
        return self.resolve("input_format")(config)


@dataclass
class AppExample:
    """A tiny model and input for the shared contract checks (River's ``_unit_test_params``)."""

    config_overrides: dict[str, Any]   # keys below ``headwater.`` (e.g. the input schema)
    state: Any                          # an app-tier model as the batch layer would save it
    lines: list[str]                    # input lines that change it


@dataclass
class SplitData:
    """One generation's data: the table version, its train and test parts, and what the app derived from them.

    Apps subclass it (in :meth:`BatchApp.prepare`) for what every candidate shares: id maps, encodings,
    evaluation samples. It lives for one generation only, so apps keep no per-generation state.
    """

    data: Any
    train: Any
    test: Any


class BatchApp(ABC):
    """The model-specific steps of a batch generation (Oryx's MLUpdate); the template does the rest.

    ``split`` → ``prepare`` → for each hyperparameter combination ``build_model`` and ``evaluate`` →
    the template gates the best against the ``baseline`` and the champion (loaded with the app's state
    class), both evaluated by the same ``evaluate`` → refit on ``all_training_data`` → ``save_model`` →
    register.
    """

    def __init__(self, config: Config):
        self.config = config

    @abstractmethod
    def hyperparameter_space(self) -> dict[str, list]:
        """``{name: [values to try]}``; an empty dict when there is nothing to tune."""

    @abstractmethod
    def split(self, data) -> tuple[Any, Any]:
        """(train, test) DataFrames from one version of the master data."""

    def prepare(self, data, train, test) -> SplitData:
        """What every candidate of this split shares (collected once); by default just the frames."""
        return SplitData(data, train, test)

    @abstractmethod
    def build_model(self, split: SplitData, hyperparams: dict[str, Any]) -> Any:
        """A model (an app-tier state) trained on ``split.train``, or None when none can be built."""

    @abstractmethod
    def evaluate(self, model, split: SplitData) -> dict[str, float]:
        """Metrics of ``model`` on ``split.test``, including the primary ``score`` (higher is better)."""

    def baseline(self, split: SplitData) -> Any:
        """A simple model of the app's kind (most popular items, biases only, one cluster, majority class)
        that ``evaluate`` scores on the same test part and a candidate must beat to be promoted
        (``headwater.ml.eval.beat-baseline``); None for no baseline."""
        return None

    def all_training_data(self, data) -> Any:
        """All of ``data`` in the form ``split`` gives its train part: what the chosen hyperparameters are
        refit on (``headwater.ml.eval.refit``). By default the union of the two parts, which is right for
        a split of rows; an app that transforms each part (ALS aggregates them) overrides it."""
        train, test = self.split(data)
        return train.unionByName(test)

    def save_model(self, model, split: SplitData, directory: Path) -> None:
        """Write the model's artifacts into ``directory`` (what the state class's ``load`` reads back)."""
        model.save(directory)

    def model_signature(self, model):
        """An optional MLflow ``ModelSignature`` for the pyfunc model of ``model``."""
        return None

    def describe(self, model) -> dict[str, Any]:
        """Extra version tags (sizes and the like)."""
        return {}

    def drift_profile(self, split: SplitData) -> dict[str, Any] | None:
        """The reference profile of what the model was trained on (:mod:`headwater.drift_profile`), stored
        with the version; the speed layer raises drift alarms on live windows against it. None: no alarms."""
        return None


class SpeedModel(Protocol):
    """The speed layer's model (Oryx's SpeedModelManager, vectorised): learns micro-batches, emits UPs."""

    @classmethod
    def from_registered(cls, registered: RegisteredModel, config: Config) -> SpeedModel:
        """Build from a registry version's artifacts (``registered.path``) and the app's settings."""

    def learn_many(self, parsed: pa.Table) -> list[Any]:
        """Fold a parsed micro-batch in; return the UP payloads describing the change (absolute values)."""

    def apply_update(self, payload: Any) -> None:
        """Apply one UP payload (idempotent); ValueError for a payload it cannot apply."""

    def copy(self) -> SpeedModel:
        """An independent copy, so a snapshot can be written while folding-in goes on."""

    def save(self, directory: Path) -> None:
        """Write the artifacts of a registry version of this model (the state class loads them)."""

    def state_summary(self) -> dict[str, Any]:
        """The learnable state as plain values; equal summaries mean equal models (contract checks)."""

    def score_many(self, parsed: pa.Table) -> dict[str, np.ndarray]:
        """Prequential scores of a micro-batch by the model as it is, *before* learning from it.

        ``{loss name: per-event values}``, each array with one value per row of ``parsed`` (NaN where the
        model cannot score the event, e.g. an unknown user), lower is better; the first entry is the
        app's primary loss (the one a rollback decision compares). The speed layer scores every batch
        with the live model and with the champion alone, on the same events. Names in use:
        ``squared_error``/``absolute_error`` (explicit ALS, forest regression), ``miss_at_10`` (implicit
        ALS: 1 unless the event's item is in the user's top 10), ``error`` (0/1, classification),
        ``distance`` (k-means: to the nearest centre).
        """


class ServingModel(Protocol):
    """The serving layer's model: answers queries lock-free and applies UP payloads from the update topic."""

    version: int | None

    @classmethod
    def from_registered(cls, registered: RegisteredModel, config: Config) -> ServingModel:
        """Build from a registry version's artifacts."""

    def apply_update(self, payload: Any) -> None:
        """Apply one UP payload (idempotent); ValueError for a payload it cannot apply."""

    def ready_reason(self) -> str | None:
        """None when the model can answer queries, else why not."""

    def state_summary(self) -> dict[str, Any]:
        """The learnable state as plain values, comparable with the speed model's."""


__all__ = ["App", "AppExample", "BatchApp", "ServingModel", "SpeedModel", "SplitData"]
