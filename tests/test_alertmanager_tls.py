"""Page delivery to a real Alertmanager that serves TLS, requires a client certificate and basic
authentication (its --web.config.file), with certificates the test makes."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import orjson
import pytest
from am_fixtures import AlertmanagerProcess, alertmanager_factory_fixture, wait_for  # noqa: F401 (fixtures)
from prometheus_client import CollectorRegistry
from test_alertmanager import Consumer, paging, sent
from tls_helpers import make_certificates

from detectors.alerts import iso
from stream.alertmanager.deliver import Delivery
from stream.config import load_settings
from stream.ops.metrics import Metrics

pytestmark = pytest.mark.integration

USER, PASSWORD = "privwatch", "am-basic-secret"


def test_pages_reach_an_alertmanager_behind_mutual_tls_and_basic_auth(
        alertmanager_factory: Callable[..., AlertmanagerProcess], tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = (f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
           f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.ca}\n"
           f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    am = alertmanager_factory(web_config=web, ssl_context=context, headers=auth)
    am.start()
    password_file = tmp_path / "am-password"
    password_file.write_text(PASSWORD + "\n")
    base = {"PRIVWATCH_ALERTMANAGER_URL": am.url, "PRIVWATCH_ALERTMANAGER_CA_FILE": str(certs.ca),
            "PRIVWATCH_ALERTMANAGER_USERNAME": USER, "PRIVWATCH_ALERTMANAGER_PASSWORD_FILE": str(password_file)}
    page = orjson.dumps(paging(1, "u-tls", iso(time.time() - 600)))

    without_cert = Delivery(load_settings({}, base), Metrics(CollectorRegistry()))
    without_cert.consumer = Consumer([page])
    without_cert.step()
    assert sent(without_cert.metrics, "failed") == 1 and without_cert.pages.unsent() == 1  # kept, retried

    settings = load_settings({}, {**base, "PRIVWATCH_ALERTMANAGER_CERT_FILE": str(certs.client_cert),
                                  "PRIVWATCH_ALERTMANAGER_KEY_FILE": str(certs.client_key)})
    delivery = Delivery(settings, Metrics(CollectorRegistry()))
    delivery.consumer = Consumer([page])
    delivery.step()
    assert sent(delivery.metrics, "ok") == 1 and delivery.pages.unsent() == 0
    [got] = wait_for(lambda: am.alerts())
    assert got["status"]["state"] == "active" and got["annotations"]["principal"] == "u-tls"
