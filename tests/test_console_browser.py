"""The web console in real headless Chromium (Debian `chromium` + `chromium-driver`, driven by Selenium):
open the page, submit a ticket, see it triaged, correct a field; ticket HTML stays text."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serverkit import ServerProcess, fresh_data_dir

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not CHROMIUM.exists() or not Path(DRIVER).exists():
    pytest.skip(
        "headless Chromium is not installed: `apt-get install -y chromium chromium-driver` to run the console test",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]  # fmt: skip


@pytest.fixture
def server(served_data_dir: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(fresh_data_dir(served_data_dir, tmp_path / "data"), tmp_path / "server.log").start()
    yield running
    running.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=DRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.mark.slow  # a real process or a retrain: `make test` only
def test_submit_see_triaged_and_correct_a_field(server: ServerProcess, browser) -> None:
    (key,) = server.printed_keys()
    wait = WebDriverWait(browser, 20)
    browser.get(server.url + "/")
    assert browser.title == "Triage console"
    browser.find_element(By.ID, "api-key").send_keys(key)
    browser.find_element(By.ID, "save-key").click()

    title = '<img src=x onerror="alert(1)"> xq zzv blorp'  # no known words: it goes to the needs-human queue
    browser.find_element(By.ID, "ticket-title").send_keys(title)
    browser.find_element(By.ID, "ticket-body").send_keys("<script>alert(2)</script> frobnicate quux")
    browser.find_element(By.ID, "ticket-submit").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "ticket-result"), "(triaged)"))
    ticket_id = browser.find_element(By.ID, "ticket-result").get_attribute("data-ticket")
    assert ticket_id and ticket_id.startswith("tkt_")

    row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f'#queue tr[data-ticket="{ticket_id}"]')))
    assert row.find_element(By.CLASS_NAME, "ticket-status").text == "triaged"
    assert row.find_element(By.CLASS_NAME, "ticket-title").text == title  # shown as text, not run as HTML
    assert browser.find_elements(By.CSS_SELECTOR, "#queue img, #review img, #queue script") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018

    card = f'#review [data-ticket="{ticket_id}"]'
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, card)))
    Select(browser.find_element(By.CSS_SELECTOR, f'{card} select[data-field="team"]')).select_by_value("security")
    browser.find_element(By.CSS_SELECTOR, f'{card} button[data-action="correct"][data-field="team"]').click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), f"feedback saved for {ticket_id}"))
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, card)))
    wait.until(ec.text_to_be_present_in_element(
        (By.CSS_SELECTOR, f'#queue tr[data-ticket="{ticket_id}"] .ticket-team'), "security"))  # fmt: skip

    stored = httpx.get(f"{server.url}/v1/tickets/{ticket_id}", headers={"X-API-Key": key}).json()
    assert stored["team"] == "security" and stored["reviewed"] is True and stored["title"] == title
    feedback = httpx.get(f"{server.url}/v1/feedback", params={"ticket_id": ticket_id}, headers={"X-API-Key": key})
    assert [(f["field"], f["action"], f["label"]) for f in feedback.json()["feedback"]] == [
        ("team", "correct", "security")
    ]
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
