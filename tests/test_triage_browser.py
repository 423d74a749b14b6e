"""The triage app in a real headless Chromium, against a real run of the service on the real broker: sign
in, open the incident, load the key file, give a scoped verdict signed in the browser, and see the
service report the repeat at level info, naming that verdict.

Debian's ``chromium`` and ``chromium-driver`` (``make sysdeps``) with Selenium; nothing is downloaded.
A missing browser fails the test. The screenshots of ``docs/analyst-guide.md`` come from here: with
``PRIVWATCH_TEST_SCREENSHOTS=1`` they are written into ``docs/images/`` (otherwise into the test's
temporary directory, so a test run leaves the tree clean)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import orjson
import pytest
from feedback_helpers import ALERT_KEY, ALICE
from kafka_helpers import principal_key, produce, read_all
from prometheus_client import CollectorRegistry
from test_feedback_kafka import _history, _repeat, wait_for
from triage_helpers import PASSWORDS, analysts_file

from detectors.calibrate import PAGING_LEVELS
from stream.feedback.signing import private_pem
from stream.ops.metrics import Metrics
from stream.service.service import Service
from stream.settings import Settings
from stream.triage.server import TriageServer
from stream.triage.store import QueueFilter

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
PRINCIPAL = "u-5"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600")


@pytest.fixture
def browser(tmp_path):
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed (Debian chromium, chromium-driver: make sysdeps)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver, name: str, tmp_path: Path) -> None:
    """A full-page PNG: into docs/images with PRIVWATCH_TEST_SCREENSHOTS=1, else into the temporary dir."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(900, height + 40), 4000))
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get("PRIVWATCH_TEST_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / name)
    driver.set_window_size(1280, 1600)


def _wait_in_browser(driver, what: str, condition, timeout_s: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(lambda d: condition(d), what)


def test_sign_in_give_a_scoped_verdict_and_see_the_repeat_suppressed(kafka_bootstrap, fresh_topics, group_id,
                                                                    tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    topics = fresh_topics(n_partitions=1)
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, group_id=group_id, access_topic=topics["access"],
        permission_topic=topics["permission"], alerts_topic=topics["alerts"], dead_letter_topic=topics["dead-letter"],
        feedback_topic=topics["feedback"], state_topic=topics["state"], metrics_port=0, merge_wait_ms=100,
        analysts_file=str(analysts_file(tmp_path)), alert_id_key=ALERT_KEY.decode(), triage_port=0,
        triage_database_url=f"sqlite:///{tmp_path / 'triage.sqlite'}", triage_group_id=f"{group_id}-triage",
        runbook_base_url="https://privwatch.example/runbooks", durable_state=False)
    key_file = tmp_path / "alice.key"
    key_file.write_bytes(private_pem(ALICE))
    produce(kafka_bootstrap, topics["access"], _history(PRINCIPAL, time.time()), principal_key)
    metrics = Metrics(CollectorRegistry(), ["volume"])
    service = Service(settings, metrics)
    thread = threading.Thread(target=service.run, kwargs={"max_idle_s": 600.0})
    thread.start()
    triage = TriageServer(settings).start()
    try:
        wait_for("the incident in the triage database",
                 lambda: triage.store.queue(QueueFilter(level="medium")), timeout_s=90)
        browser.get(triage.url + "/")
        assert "/login" in browser.current_url  # nothing anonymous
        browser.find_element(By.ID, "name").send_keys("alice")
        browser.find_element(By.ID, "password").send_keys(PASSWORDS["alice"])
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        _wait_in_browser(browser, "the queue", lambda d: d.find_elements(By.CSS_SELECTOR, "a.incident-link"))
        assert browser.find_element(By.ID, "signed-in").text == "alice"
        _screenshot(browser, "triage-queue.png", tmp_path)

        browser.find_element(By.CSS_SELECTOR, "a.incident-link").click()
        _wait_in_browser(browser, "the incident page", lambda d: d.find_elements(By.ID, "incident"))
        assert browser.find_element(By.ID, "principal").text == PRINCIPAL
        assert browser.find_elements(By.CSS_SELECTOR, ".chart rect.observed")
        browser.find_element(By.ID, "key-file").send_keys(str(key_file))
        _wait_in_browser(browser, "the key loaded", lambda d: "loaded" in d.find_element(By.ID, "key-status").text
                         and "no key" not in d.find_element(By.ID, "key-status").text)
        form = browser.find_element(By.CSS_SELECTOR, "form.verdict-form")
        Select(form.find_element(By.NAME, "scope")).select_by_value("detector")
        days = form.find_element(By.NAME, "days")
        days.clear()
        days.send_keys("3")
        form.find_element(By.NAME, "note").send_keys("quarterly migration, ticket CHG-4711")
        form.find_element(By.CSS_SELECTOR, "button.fp").click()
        _wait_in_browser(browser, "the verdict listed", lambda d: "CHG-4711" in d.find_element(By.ID, "verdicts").text)
        _screenshot(browser, "triage-incident.png", tmp_path)
        verdict = triage.store.verdicts_of(browser.find_element(By.ID, "incident").get_attribute("data-incident-id"))[0]
        assert (verdict["analyst"], verdict["verdict"], verdict["scope"]) == ("alice", "false_positive", "detector")

        wait_for("the service to apply the verdict",
                 lambda: metrics.feedback.labels("false_positive")._value.get() == 1)
        produce(kafka_bootstrap, topics["access"], [_repeat(PRINCIPAL, time.time())], principal_key)

        def repeat() -> dict | None:
            alerts = [orjson.loads(r.value) for r in read_all(kafka_bootstrap, topics["alerts"], timeout_s=5)]
            return next((a for a in alerts if a["evidence_event_ids"][-1].endswith("-bulk-again")), None)

        wait_for("the repeat's alert", lambda: repeat() is not None)
        again = repeat()
        assert again["level"] == "info" and again["level"] not in PAGING_LEVELS
        assert again["suppressed_by"]["verdict_id"] == verdict["verdict_id"]
        wait_for("the repeat in the triage database", lambda: triage.store.alert(again["alert_id"]) is not None)
        browser.get(f"{triage.url}/alerts/{again['alert_id']}")
        _wait_in_browser(browser, "the repeat shown as suppressed",
                         lambda d: verdict["verdict_id"] in d.find_element(By.CSS_SELECTOR, "p.suppressed").text)
    finally:
        triage.stop()
        service.request_stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert metrics.registry.get_sample_value("privwatch_feedback_refused_total", {"reason": "bad_signature"}) == 0
