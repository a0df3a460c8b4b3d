"""Random-forest demo data and the demo's streaming step, on data sets shipped inside scikit-learn.

- classification: breast cancer (569 rows, 30 numeric features, target ``diagnosis`` malignant/benign),
  ``conf/rdf-classification.conf``;
- regression: diabetes (442 rows; ``sex`` as a categorical feature, nine numeric ones, target
  ``progression``), ``conf/rdf-regression.conf``.

:func:`history_lines` gives the CSV lines of either, in the column order of its config (the history the
demo sends, ingests and trains on); :func:`show_live_learning` is the part of ``headwater demo``
that proves the speed layer: it reads a prediction from the serving layer, sends labelled examples
that contradict it to the input topic, and waits until the same request answers differently, with
no batch run in between.

>>> lines = history_lines("rdf-regression")
>>> len(lines), lines[0]
(442, '59.0,2,32.1,101.0,157.0,93.2,38.0,4.0,4.8598,87.0,151.0')
"""
from __future__ import annotations

import time

DEMO_APPS = ("rdf-classification", "rdf-regression")
# printed by the demo as a URL to try
EXAMPLE_PATH = "/feature/importance"


def _number(value: float) -> str:
    return repr(float(value))


def breast_cancer_lines() -> list[str]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = list(data.target_names)
    return [",".join([*map(_number, row), names[target]]) for row, target in zip(data.data, data.target)]


def diabetes_lines() -> list[str]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    lines = []
    for row, target in zip(data.data, data.target):
        values = [_number(v) for v in row]
        values[1] = str(int(row[1]))  # sex: the categorical feature, written as its code "1" or "2"
        lines.append(",".join([*values, _number(target)]))
    return lines


def history_lines(app: str) -> list[str]:
    if app == "rdf-classification":
        return breast_cancer_lines()
    if app == "rdf-regression":
        return diabetes_lines()
    raise ValueError(f"no forest demo data for app {app!r}; choose one of {', '.join(DEMO_APPS)}")


def contradicting_lines(app: str, datum: str, prediction: str, copies: int) -> list[str]:
    """``copies`` labelled copies of ``datum`` whose target disagrees with ``prediction``."""
    fields = datum.split(",")
    if app == "rdf-classification":
        fields[-1] = "benign" if prediction == "malignant" else "malignant"
    else:
        fields[-1] = _number(float(prediction) * 3 + 100)
    return [",".join(fields)] * copies


def show_live_learning(config, base_url: str, timeout: float = 120.0, copies: int = 300) -> tuple[str, str]:
    """Predict one demo row, stream examples that contradict it, wait for the prediction to change.

    The examples go to ``<id>.input`` like any producer's; the serving layer at ``base_url`` answers
    differently once the speed layer's leaf UPs reach it. Returns (prediction before, after).
    """
    import requests

    from headwater.kafka_producer import LineProducer

    app = config.get("headwater.app")
    datum = history_lines(app)[0]
    url = f"{base_url}/predict/{datum}"
    before = requests.get(url, timeout=10).text.strip()
    print(f"\nprediction for the first {app} demo row: {before}")
    # the speed layer reads new records only once its query runs: give it a moment after /ready
    time.sleep(3)
    sent_at = time.monotonic()
    with LineProducer(config.kafka) as producer:
        producer.send_lines(config.input_topic, contradicting_lines(app, datum, before, copies))
    print(f"sent {copies} labelled copies of that row with another target to {config.input_topic} "
          "(no batch run follows)")
    while time.monotonic() - sent_at < timeout:
        after = requests.get(url, timeout=10).text.strip()
        if after != before:
            print(f"prediction after {time.monotonic() - sent_at:.1f} s: {after} (leaf statistics updated "
                  "by the speed layer)")
            return before, after
        time.sleep(0.5)
    raise TimeoutError(f"the prediction for {url} did not change within {timeout:.0f} s; see var/logs/speed.log")
