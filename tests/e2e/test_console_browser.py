"""The console in a real browser (Debian's Chromium through Selenium), against a
real server: a labeler signs in, finds a real thumbs-down on a real answer in the
queue, claims it, labels it from the keyboard, and exports the label; an admin
creates an API key and changes a model's rollout split. Each page is saved as a
screenshot under test-artifacts/console/.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.console_support import PASSWORD, add_user, answer_and_thumbs_down
from tests.support.browser import chromium, screenshot, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from selenium.webdriver.remote.webdriver import WebDriver

    from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.e2e

CORRECTION = "The Zorblax reactor was built in 2087 by the engineer Mira Okafor [1]."


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def _sign_in(driver: WebDriver, url: str, tenant: str, username: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{url}/admin/queue")
    # Sent to the sign-in page, and back to the queue afterwards.
    wait_for(driver, lambda d: d.find_elements(By.ID, "login-form"))
    assert "/admin/login?next=" in driver.current_url
    driver.find_element(By.ID, "tenant").send_keys(tenant)
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(driver, lambda d: d.current_url.endswith("/admin/queue"))


def _press(driver: WebDriver, *keys: str) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(*keys)


def _session_client(driver: WebDriver, url: str) -> httpx.Client:
    """An HTTP client holding the browser's console session (downloads are checked
    with it rather than through the browser's download folder)."""
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    return httpx.Client(base_url=url, cookies=cookies, timeout=60)


def test_a_labeler_works_a_thumbs_down_from_the_keyboard_and_exports_it(
    deployment: Deployment, browser: WebDriver
) -> None:
    server = deployment.server
    add_user(server, "acme", "lara", "labeler")
    with deployment.client() as api:
        answer = answer_and_thumbs_down(api, "Who built the Zorblax reactor?", "names nobody")
    _sign_in(browser, server.url, "acme", "lara")

    # The queue shows the thumbs-down; filter it to user feedback.
    assert browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr[data-task]")
    assert "thumbs down" in browser.find_element(By.ID, "tasks").text
    browser.find_element(By.CSS_SELECTOR, "#filter-source option[value='user_feedback']").click()
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait_for(browser, lambda d: "source=user_feedback" in d.current_url)
    sources_shown = browser.find_elements(By.CSS_SELECTOR, "#tasks .tag")
    assert {tag.text for tag in sources_shown} == {"user feedback"}
    screenshot(browser, "queue")

    # ? opens the cheat sheet; n claims the next task.
    _press(browser, "?")
    wait_for(
        browser, lambda d: d.find_element(By.ID, "shortcuts").get_attribute("open") is not None
    )
    screenshot(browser, "shortcuts")
    _press(browser, Keys.ESCAPE)
    # Work the queue until the task of this answer comes up (earlier tests left others).
    for _ in range(20):
        _press(browser, "n" if "/admin/queue" in browser.current_url else "s")
        wait_for(browser, lambda d: d.find_elements(By.ID, "task-state"))
        if answer["content"][:40] in browser.find_element(By.CSS_SELECTOR, ".reviewed").text:
            break
    else:
        pytest.fail("the thumbs-down never came up in the queue")
    state = browser.find_element(By.ID, "task-state").text
    assert "Leased to you" in state
    sources = browser.find_elements(By.CSS_SELECTOR, ".sources .source")
    assert sources, "the model's sources are shown"
    assert "zorblax" in sources[0].text.lower()
    assert browser.find_element(By.ID, "model-version").text not in ("", "unknown")
    screenshot(browser, "task")

    # Label from the keyboard: 2 = hallucination, 3 = wrong citation; c edits the answer.
    _press(browser, "2")
    _press(browser, "3")
    assert browser.find_element(By.ID, "category-hallucination").is_selected()
    assert browser.find_element(By.ID, "category-wrong_citation").is_selected()
    _press(browser, "c")
    editor = browser.switch_to.active_element
    assert editor.get_attribute("id") == "corrected-answer"
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(CORRECTION)
    editor.send_keys(Keys.ESCAPE)
    relevant = browser.find_elements(By.CSS_SELECTOR, "input[name='rating_1'][value='2']")
    if relevant:
        relevant[0].click()
    task_url = browser.current_url
    browser.find_element(By.ID, "note").send_keys("Answer named the wrong engineer.")
    browser.find_element(By.ID, "note").send_keys(Keys.CONTROL, Keys.ENTER)
    wait_for(browser, lambda d: d.current_url != task_url)

    # The label is stored: the task says so, and the export carries it.
    with _session_client(browser, server.url) as client:
        task_page = client.get(task_url.removeprefix(server.url).split("?")[0])
        assert "This task is done" in task_page.text or "labelled this task" in task_page.text
        sft = client.get("/admin/export/labels.jsonl", params={"format": "sft"})
        assert sft.status_code == 200
        assert sft.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in sft.text.splitlines()]
        mine = [line for line in lines if line["messages"][-1]["content"] == CORRECTION]
        assert len(mine) == 1
        record = mine[0]
        assert record["messages"][0]["role"] == "system"
        assert "zorblax" in record["messages"][0]["content"].lower()  # the sources
        assert record["messages"][-2] == {
            "role": "user",
            "content": "Who built the Zorblax reactor?",
        }
        assert record["model_version"]
        preference = client.get("/admin/export/labels.jsonl", params={"format": "preference"})
        pairs = [json.loads(line) for line in preference.text.splitlines()]
        pair = next(p for p in pairs if p["chosen"] == CORRECTION)
        assert pair["rejected"] == answer["content"]
    browser.get(f"{server.url}/admin/export")
    screenshot(browser, "export")


def test_an_admin_creates_a_key_and_changes_a_rollout_split(
    deployment: Deployment, browser: WebDriver
) -> None:
    server = deployment.server
    add_user(server, "acme", "ana", "admin", "--platform-admin")
    server.cli("models", "create", "console-demo")
    for version in ("v1", "v2"):
        server.cli("models", "add-version", "console-demo", version, "--backend", "embedded")
    try:
        _sign_in(browser, server.url, "acme", "ana")

        browser.get(f"{server.url}/admin/tenant")
        browser.find_element(By.ID, "key-name").send_keys("browser-made")
        browser.find_element(By.ID, "create-key").click()
        wait_for(browser, lambda d: d.find_elements(By.ID, "new-key-secret"))
        secret = browser.find_element(By.ID, "new-key-secret").text.strip()
        screenshot(browser, "tenant")
        with httpx.Client(base_url=server.url, timeout=60) as api:
            works = api.get("/v1/conversations", headers={"Authorization": f"Bearer {secret}"})
            assert works.status_code == 200

        browser.get(f"{server.url}/admin/models")
        form = browser.find_element(By.ID, "rollout-console-demo")
        form.find_element(By.CSS_SELECTOR, "select[name=canary] option[value='v2']").click()
        share = form.find_element(By.NAME, "canary_percent")
        share.clear()
        share.send_keys("25")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # NOTE: the posted form's page is replaced (redirect): read the new one only
        # once the old is gone, or ChromeDriver may answer for a node of the old one.
        WebDriverWait(browser, 20).until(staleness_of(form))
        wait_for(
            browser, lambda d: "canary 25.0 %" in d.find_element(By.ID, "model-console-demo").text
        )
        screenshot(browser, "models")
        listed = server.cli("models", "list")
        assert "canary v2" in listed or "v2" in listed
        assert "25" in listed
    finally:
        # The registry is the deployment's: other tests list its models.
        operator = server.cli(
            "keys", "create", "--tenant", "acme", "--role", "admin", "--scope", "platform:admin"
        ).split()[-1]
        with httpx.Client(base_url=server.url, timeout=60) as api:
            gone = api.delete(
                "/v1/admin/models/console-demo", headers={"Authorization": f"Bearer {operator}"}
            )
            assert gone.status_code == 204, gone.text

    browser.get(f"{server.url}/admin/metrics")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#charts svg"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#charts svg")) >= 6
    screenshot(browser, "metrics")
