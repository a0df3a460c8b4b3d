"""How every Kafka client reaches the brokers: bootstrap servers plus TLS and SASL settings, in one place.

``headwater.kafka.security-protocol``, ``headwater.kafka.ssl.*`` and ``headwater.kafka.sasl.*``
become kafka-python's keyword arguments (``security_protocol``, ``ssl_cafile``, ``sasl_mechanism``,
``sasl_plain_username`` ...), which the producer, the admin client, every consumer, the topic tail
and the Structured Streaming source all take from :class:`KafkaSettings`. The Spark source gets
them as ``kafka.<argument>`` options: Spark redacts option values whose names match
``spark.redaction.regex`` (``password`` among them) wherever it shows a plan or a progress report,
and options never reach a command line. ``repr`` hides the secrets too.

>>> settings = KafkaSettings("kafka-1:9093", {"security_protocol": "SASL_SSL", "sasl_plain_password": "s3cret"})
>>> settings
KafkaSettings('kafka-1:9093', security_protocol='SASL_SSL', sasl_plain_password='***')
>>> KafkaSettings.from_options(settings.as_options()) == settings
True
>>> KafkaSettings.of("127.0.0.1:9092").client_kwargs()
{'bootstrap_servers': '127.0.0.1:9092'}
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.constraints import ConfigError

if TYPE_CHECKING:
    from headwater.config import Config

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# config key below headwater.kafka -> kafka-python keyword argument
SSL_KEYS = {"ssl.ca-file": "ssl_cafile", "ssl.cert-file": "ssl_certfile", "ssl.key-file": "ssl_keyfile",
            "ssl.key-password": "ssl_password", "ssl.check-hostname": "ssl_check_hostname"}
SASL_KEYS = {"sasl.mechanism": "sasl_mechanism", "sasl.user-name": "sasl_plain_username",
             "sasl.password": "sasl_plain_password"}
SECRET_ARGUMENTS = frozenset({"ssl_password", "sasl_plain_password"})
# Spark option prefix of the client settings (Spark's own Kafka source uses the same convention)
OPTION_PREFIX = "kafka."


@dataclass(frozen=True)
class KafkaSettings:
    """Bootstrap servers and kafka-python's security keyword arguments (only those that are set)."""

    bootstrap_servers: str
    security: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, kafka: KafkaSettings | str) -> KafkaSettings:
        """Settings as given, or a plain ``host:port`` list without security (the embedded broker, tests)."""
        return kafka if isinstance(kafka, KafkaSettings) else cls(kafka)

    @classmethod
    def from_config(cls, config: Config) -> KafkaSettings:
        """``headwater.kafka.*`` checked as a whole: SASL needs a mechanism, a user name and a password."""
        protocol = config.get("headwater.kafka.security-protocol")
        security: dict[str, Any] = {} if protocol == "PLAINTEXT" else {"security_protocol": protocol}
        if protocol in ("SSL", "SASL_SSL"):
            security.update(_set_keys(config, SSL_KEYS))
        if protocol.startswith("SASL_"):
            for key in SASL_KEYS:
                if config.get(f"headwater.kafka.{key}") is None:
                    raise ConfigError(f"headwater.kafka.{key} must be set when headwater.kafka.security-protocol "
                                      f"is {protocol} (in {config.source_of('headwater.kafka.security-protocol')})")
            security.update(_set_keys(config, SASL_KEYS))
        return cls(config.get("headwater.kafka.bootstrap-servers"), security)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``KafkaProducer``, ``KafkaConsumer`` and ``KafkaAdminClient``."""
        return {"bootstrap_servers": self.bootstrap_servers, **self.security}

    def as_options(self) -> dict[str, str]:
        """Options for the ``headwater-kafka`` Spark source (strings, as Spark passes them)."""
        options = {"bootstrap.servers": self.bootstrap_servers}
        for name, value in self.security.items():
            options[OPTION_PREFIX + name] = str(value).lower() if isinstance(value, bool) else str(value)
        return options

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> KafkaSettings:
        """The inverse of :meth:`as_options` (option names are case-insensitive in Spark)."""
        given = {k.lower(): v for k, v in options.items()}
        known = {*SSL_KEYS.values(), *SASL_KEYS.values(), "security_protocol"}
        security: dict[str, Any] = {}
        for name, value in given.items():
            argument = name.removeprefix(OPTION_PREFIX)
            if not name.startswith(OPTION_PREFIX):
                continue
            if argument not in known:
                raise ValueError(f"The option {name!r} of the headwater-kafka source is not a Kafka client "
                                 f"setting headwater knows (known: {', '.join(sorted(known))}).")
            security[argument] = value.lower() == "true" if argument == "ssl_check_hostname" else value
        return cls(given.get("bootstrap.servers", ""), security)

    def __repr__(self) -> str:
        shown = "".join(f", {k}={'***' if k in SECRET_ARGUMENTS else v!r}" for k, v in self.security.items())
        return f"KafkaSettings({self.bootstrap_servers!r}{shown})"


def _set_keys(config: Config, keys: Mapping[str, str]) -> dict[str, Any]:
    values = {argument: config.get(f"headwater.kafka.{key}") for key, argument in keys.items()}
    return {argument: value for argument, value in values.items() if value is not None}


__all__ = ["KafkaSettings", "PROTOCOLS", "SASL_MECHANISMS"]
