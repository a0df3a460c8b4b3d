"""headwater: a lambda-architecture platform for machine learning on live data.

The shared core: configuration, Kafka I/O, Delta tables, the MLflow registry, update messages,
input parsing and the embedded stack. The three layers live in `batch_layer`, `speed_layer` and
`serving_layer`; each app (als, kmeans, random forests) is one module in each.
"""

__version__ = "0.1.0"
