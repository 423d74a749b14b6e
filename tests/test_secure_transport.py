"""The service over a broker the test configures itself for SASL_SSL (SCRAM-SHA-512) and for mutual
TLS, with certificates the test makes; secrets come from files or the environment, never flags."""

from __future__ import annotations

import ssl
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from delivery_helpers import Running, assert_accounted
from factories import routine_then_bulk
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import NoBrokersAvailable
from kafka_fixtures import ROLES, TEST_JVM_OPTS, LocalKafka, _wait_for_leaders, local_kafka
from kafka_helpers import principal_key
from tls_helpers import Certificates, make_certificates

from detectors.calibrate import PAGING_LEVELS
from stream.config import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dev" / "kafka"))
from security import SecureListeners, scram_format_args  # noqa: E402

pytestmark = pytest.mark.integration

USER, PASSWORD = "privwatch", "scram-" + uuid.uuid4().hex


class SecureKafka:
    def __init__(self, broker: Any, listeners: SecureListeners, certs: Certificates) -> None:
        self.broker, self.listeners, self.certs = broker, listeners, certs
        self.plain = broker.bootstrap


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    base = tmp_path_factory.mktemp("secure-kafka")
    certs = make_certificates(base / "certs")
    plain, controller, sasl_ssl, ssl = local_kafka.free_ports(4)
    listeners = SecureListeners(sasl_ssl, ssl, certs.broker_keystore, certs.ca)
    broker = LocalKafka(plain, controller, data_dir=base / "kafka", jvm_opts=TEST_JVM_OPTS,
                        extra_props=listeners.properties(plain, controller),
                        format_args=scram_format_args({USER: PASSWORD}))
    broker.start().wait_ready(90)
    try:
        yield SecureKafka(broker, listeners, certs)
    finally:
        broker.stop()


def make_topics(bootstrap: str) -> dict[str, str]:
    prefix = f"pw-{uuid.uuid4().hex[:8]}"
    topics = {role: f"{prefix}.{role}" for role in ROLES}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(t, 2, 1, topic_configs={"cleanup.policy": "compact"} if r == "state" else {})
                         for r, t in topics.items()])
    admin.close()
    _wait_for_leaders(bootstrap, list(topics.values()), 2)
    return topics


def run_over(settings_env: dict[str, str], kafka: SecureKafka, security: dict[str, Any]) -> None:
    topics = make_topics(kafka.plain)
    docs = routine_then_bulk("u-tls", days=4, per_day=20)
    producer = KafkaProducer(acks="all", **security)
    for doc in docs:
        producer.send(topics["access"], key=principal_key(doc), value=orjson.dumps(doc))
    producer.flush()
    producer.close()
    env = {f"PRIVWATCH_{k.upper()}": v for k, v in {
        "access_topic": topics["access"], "permission_topic": topics["permission"], "alerts_topic": topics["alerts"],
        "dead_letter_topic": topics["dead-letter"], "feedback_topic": topics["feedback"],
        "state_topic": topics["state"], "group_id": f"g-{uuid.uuid4().hex[:8]}", "metrics_port": "0",
        "merge_wait_ms": "100", "durable_state": "false", **settings_env}.items()}
    settings = load_settings({}, env)
    run = Running(settings)
    assert run.wait() == 0
    consumer = KafkaConsumer(topics["alerts"], group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000, **security)
    alerts = [orjson.loads(r.value) for r in consumer]
    consumer.close()
    assert [a["evidence_event_ids"][-1] for a in alerts if a["level"] in PAGING_LEVELS] == ["u-tls-bulk"]
    plain = settings.model_copy(update={"bootstrap_servers": kafka.plain})
    assert_accounted(kafka.plain, plain, run.metrics, expect_consumed=len(docs))


def test_sasl_ssl_with_scram_and_the_password_from_a_file(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    password_file = tmp_path / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    bootstrap = f"127.0.0.1:{secure_kafka.listeners.sasl_ssl_port}"
    security = dict(bootstrap_servers=bootstrap, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                    sasl_plain_username=USER, sasl_plain_password=PASSWORD, ssl_cafile=str(secure_kafka.certs.ca))
    run_over({"bootstrap_servers": bootstrap, "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
              "sasl_plain_username": USER, "sasl_plain_password_file": str(password_file),
              "ssl_cafile": str(secure_kafka.certs.ca)}, secure_kafka, security)


def test_mutual_tls_and_a_client_without_a_certificate_is_refused(secure_kafka: SecureKafka) -> None:
    certs = secure_kafka.certs
    bootstrap = f"127.0.0.1:{secure_kafka.listeners.ssl_port}"
    security = dict(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_cafile=str(certs.ca),
                    ssl_certfile=str(certs.client_cert), ssl_keyfile=str(certs.client_key))
    with pytest.raises((NoBrokersAvailable, ssl.SSLError)):  # the broker's handshake refuses it
        KafkaConsumer(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_cafile=str(certs.ca),
                      request_timeout_ms=5000, api_version_auto_timeout_ms=5000)
    run_over({"bootstrap_servers": bootstrap, "security_protocol": "SSL", "ssl_cafile": str(certs.ca),
              "ssl_certfile": str(certs.client_cert), "ssl_keyfile": str(certs.client_key)}, secure_kafka, security)
