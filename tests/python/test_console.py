"""The web console in a real browser: Debian's Chromium, headless, driven by Selenium through chromedriver.

Each test starts its own `floe serve` with tables PyIceberg wrote (appends, a delete, a tag and a branch,
then a compaction the server's scheduler ran), opens every page of `/console` and checks what a person
sees there against what the REST API says: the tables listed and found by search, one marker per
snapshot on the timeline, branch and tag flags, histogram bars adding up to the data files, the
maintenance settings; it edits a setting and reads it back through the API, and runs SQL queries (one
with time travel). With `--auth oauth2`: nothing but the sign-in page without a token, signing in with a
client credential works, and a principal that may read a table but not maintain it cannot change its
settings or query a table it may not read.

Screenshots of every page go to `$FLOE_TEST_LOG_DIR/console` (else the test's temp dir); docs/console.md
shows a few of them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Optional, TypeVar

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.expressions import LessThan
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from auth_support import AuthAdmin
from floe_server import FloeServer

WAIT_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 30
# How long the scheduler may take to run the compaction the test turns on.
COMPACTION_WAIT_SECONDS = 90
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
]
NAMESPACE = "shop"
SEPARATOR = "\x1f"

T = TypeVar("T")


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail("the console tests need Debian's chromium and chromium-driver (scripts/test.sh installs them)")
    return browser, driver


@pytest.fixture
def screenshots(floe_log_dir: Path) -> Path:
    path = floe_log_dir / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser() -> Generator[WebDriver, None, None]:
    binary, driver_path = chromium_paths()
    profile = tempfile.mkdtemp(prefix="floe-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ------------------------------------------------------------------------------------ helpers


def wait_for(driver: WebDriver, what: str, condition: Callable[[WebDriver], Optional[T]]) -> T:
    """The first truthy value of `condition` within WAIT_SECONDS; fails with `what` and the page's text."""

    def attempt(d: WebDriver) -> Optional[T]:
        try:
            return condition(d)
        except (StaleElementReferenceException, WebDriverException):
            return None

    try:
        return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(attempt)  # type: ignore[return-value]
    except Exception as error:  # noqa: BLE001 - re-raised with what the page showed
        text = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"waiting for {what}: {error!r}\n--- page text:\n{text[:3000]}") from None


def element(driver: WebDriver, css: str) -> WebElement:
    return wait_for(driver, css, lambda d: d.find_element(By.CSS_SELECTOR, css))


def texts(driver: WebDriver, css: str) -> list[str]:
    return [node.text for node in driver.find_elements(By.CSS_SELECTOR, css)]


def open_page(driver: WebDriver, server: FloeServer, fragment: str) -> None:
    driver.get(f"{server.uri}/console#{fragment}")


def loaded(driver: WebDriver) -> bool:
    return "Loading…" not in driver.find_element(By.ID, "main").text


def shoot(driver: WebDriver, directory: Path, name: str) -> None:
    # Full height: the page's own scroll height, so that a screenshot shows the whole page.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(900, min(int(height) + 40, 6000)))
    driver.save_screenshot(str(directory / f"{name}.png"))


def shoot_element(driver: WebDriver, directory: Path, css: str, name: str) -> None:
    """One part of the page, small enough for docs/console.md."""
    driver.set_window_size(1100, 1400)
    target = element(driver, css)
    driver.execute_script("arguments[0].scrollIntoView()", target)
    target.screenshot(str(directory / f"{name}.png"))


def no_console_errors(driver: WebDriver) -> None:
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    # A 401/403 the console handled shows in the log as a failed resource load, not as a script error.
    script_errors = [e for e in errors if "Failed to load resource" not in e["message"]]
    assert not script_errors, f"errors in the browser console: {script_errors}"


def ns_path(namespace: str) -> str:
    return requests.utils.quote(namespace, safe="")


def settings_path(namespace: str, table: str) -> str:
    return f"/management/v1/warehouses/main/namespaces/{ns_path(namespace)}/tables/{table}/maintenance"


class Api:
    """The server's REST and management API, as the tests check what the console shows."""

    def __init__(self, server: FloeServer, token: Optional[str] = None) -> None:
        self.server = server
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> Any:
        response = self.session.get(f"{self.server.uri}{path}", timeout=HTTP_TIMEOUT_SECONDS)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = self.session.post(f"{self.server.uri}{path}", json=body, timeout=HTTP_TIMEOUT_SECONDS)
        assert response.status_code in (200, 204), f"POST {path}: {response.status_code} {response.text}"
        return response.json() if response.text else None

    def metadata(self, table: str) -> dict[str, Any]:
        return self.get(f"/v1/main/namespaces/{NAMESPACE}/tables/{table}")["metadata"]

    def setting(self, table: str, key: str) -> dict[str, str]:
        return self.get(settings_path(NAMESPACE, table))["settings"][key]

    def sql(self, query: str) -> dict[str, Any]:
        return self.post("/management/v1/warehouses/main/sql", {"sql": query})


def write_tables(catalog: RestCatalog, api: Api) -> None:
    """`shop.orders`: four appends, a delete, a tag and a branch, then a compaction by the scheduler;
    `shop.customers`: one append; `shop.big_orders`: a view."""
    catalog.create_namespace(NAMESPACE)
    schema = pa.schema([("id", pa.int64()), ("region", pa.string()), ("amount", pa.float64())])
    orders = catalog.create_table(
        f"{NAMESPACE}.orders",
        schema=schema,
        # Off until every snapshot below is written, so that the test knows what the history holds.
        properties={"floe.maintenance.compaction.enabled": "false"},
    )
    for batch in range(4):
        ids = list(range(batch * 10, batch * 10 + 10))
        orders.append(
            pa.table(
                {"id": ids, "region": ["eu" if i % 2 else "us" for i in ids], "amount": [i * 1.5 for i in ids]},
                schema=schema,
            )
        )
    orders.delete(LessThan("id", 5))
    orders = catalog.load_table(f"{NAMESPACE}.orders")
    current = orders.current_snapshot()
    assert current is not None
    orders.manage_snapshots().create_tag(current.snapshot_id, "before-compaction").create_branch(
        current.snapshot_id, "audit"
    ).commit()

    customers = catalog.create_table(
        f"{NAMESPACE}.customers", schema=pa.schema([("id", pa.int64()), ("name", pa.string())])
    )
    customers.append(pa.table({"id": [1, 2], "name": ["Ada", "Grace"]}, schema=customers.schema().as_arrow()))

    view = {
        "name": "big_orders",
        "schema": {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]},
        "view-version": {
            "version-id": 1,
            "schema-id": 0,
            "timestamp-ms": int(time.time() * 1000),
            "summary": {"engine-name": "floe-console-tests"},
            "representations": [{"type": "sql", "sql": "SELECT id FROM shop.orders WHERE amount > 30", "dialect": "spark"}],
            "default-namespace": [NAMESPACE],
        },
        "properties": {},
    }
    api.post(f"/v1/main/namespaces/{NAMESPACE}/views", view)

    api.post(
        settings_path(NAMESPACE, "orders"),
        {"updates": {"floe.maintenance.compaction.enabled": "true", "floe.maintenance.compaction.min-input-files": "2"}},
    )
    deadline = time.monotonic() + COMPACTION_WAIT_SECONDS
    while True:
        jobs = api.get(f"/management/v1/maintenance/jobs?warehouse=main&namespace={NAMESPACE}&table=orders&kind=compaction")["jobs"]
        if any(job["outcome"] == "succeeded" for job in jobs):
            break
        assert time.monotonic() < deadline, f"no compaction of {NAMESPACE}.orders ran: {jobs}"
        time.sleep(0.3)
    operations = [s["summary"]["operation"] for s in api.metadata("orders")["snapshots"]]
    assert "replace" in operations, operations


# ------------------------------------------------------------------------------------ the tests


@pytest.fixture
def console_server(tmp_path: Path, floe_log_dir: Path) -> Generator[FloeServer, None, None]:
    server = FloeServer(
        tmp_path / "data",
        floe_log_dir / "floe-console.log",
        extra_args=["--maintenance-interval-ms", "300"],
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_every_page_shows_the_tables_pyiceberg_wrote(
    console_server: FloeServer, browser: WebDriver, screenshots: Path
) -> None:
    server = console_server
    api = Api(server)
    write_tables(RestCatalog("floe", uri=server.uri), api)
    metadata = api.metadata("orders")

    # The security headers ride on every console response.
    page = requests.get(f"{server.uri}/console", timeout=HTTP_TIMEOUT_SECONDS)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"

    # Warehouses: no sign-in without auth.
    open_page(browser, server, "/")
    element(browser, "a.warehouse")
    assert texts(browser, "a.warehouse") == ["main"]
    assert not browser.find_elements(By.ID, "sign-in-form")
    shoot(browser, screenshots, "warehouses")

    # The warehouse: namespaces, tables and views; search narrows the list.
    element(browser, "a.warehouse").click()
    wait_for(browser, "the table list", lambda d: len(d.find_elements(By.CSS_SELECTOR, ".entry")) == 3)
    assert sorted(texts(browser, ".entry.table a")) == ["customers", "orders"]
    assert texts(browser, ".entry.view a") == ["big_orders"]
    assert "shop" in texts(browser, ".namespace h3")[0]
    search = element(browser, "#search")
    search.send_keys("cust")
    wait_for(browser, "search to hide orders", lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, ".entry") if e.is_displayed()] == ["TABLE customers"])
    shoot(browser, screenshots, "search")
    shoot_element(browser, screenshots, "#main", "part-search")
    search.clear()
    search.send_keys("ord")
    wait_for(browser, "search to find orders", lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, ".entry a") if e.is_displayed()] == ["big_orders", "orders"])

    # The table.
    browser.find_element(By.LINK_TEXT, "orders").click()
    assert element(browser, "#table-name").text == f"{NAMESPACE}.orders"
    wait_for(browser, "the histogram", lambda d: d.find_elements(By.CSS_SELECTOR, "svg.histogram rect.bar") or d.find_elements(By.CSS_SELECTOR, "#file-sizes .notice"))
    markers = browser.find_elements(By.CSS_SELECTOR, "svg.timeline circle.snapshot")
    # Four appends, the delete (PyIceberg rewrites the file it deletes from: an overwrite), the compaction.
    assert len(markers) == len(metadata["snapshots"]) == 6
    operations = {m.get_attribute("class").split("op-")[1] for m in markers}
    assert {"append", "replace"} <= operations, operations
    assert {m.get_attribute("data-snapshot-id") for m in markers} == {str(s["snapshot-id"]) for s in metadata["snapshots"]}
    refs = {node.get_attribute("data-ref") for node in browser.find_elements(By.CSS_SELECTOR, "svg.timeline .ref")}
    assert refs == {"main", "before-compaction", "audit"}
    assert browser.find_elements(By.CSS_SELECTOR, "svg.timeline .ref.tag")[0].get_attribute("data-ref") == "before-compaction"

    files = api.sql(f'SELECT count(*) FROM "{NAMESPACE}"."orders$files" WHERE content = 0')["rows"][0][0]
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.histogram rect.bar")
    assert bars, "no histogram bars"
    assert sum(int(bar.get_attribute("data-files")) for bar in bars) == int(files)
    assert "compaction target 512 MiB" in element(browser, "svg.histogram .target-label").text

    assert texts(browser, "#current-schema tbody td:nth-child(2)") == ["id", "region", "amount"]
    assert "Unpartitioned" in element(browser, "#partition-spec").text
    assert "floe.maintenance.compaction.min-input-files" in element(browser, "#properties-table").text
    min_files = element(browser, "#settings input[data-setting='floe.maintenance.compaction.min-input-files']")
    assert min_files.get_attribute("value") == "2"
    assert element(browser, "#settings tr[data-setting='floe.maintenance.compaction.min-input-files'] .source").text == "table"
    wait_for(browser, "the compaction in the job history", lambda d: "compaction" in d.find_element(By.ID, "jobs-table").text)
    assert "succeeded" in element(browser, "#jobs-table").text
    assert "found nothing wrong" in element(browser, "#findings").text
    shoot(browser, screenshots, "table")
    shoot_element(browser, screenshots, "#timeline", "part-timeline")
    shoot_element(browser, screenshots, "#file-sizes", "part-file-sizes")
    shoot_element(browser, screenshots, "#maintenance", "part-maintenance")

    # Edit a setting; the API reads back what the console stored.
    key = "floe.maintenance.snapshot-expiry.min-snapshots-to-keep"
    assert api.setting("orders", key)["value"] == "1"
    field = element(browser, f"#settings input[data-setting='{key}']")
    field.clear()
    field.send_keys("25")
    element(browser, f"#settings button.save[data-setting='{key}']").click()
    wait_for(browser, "the save to be confirmed", lambda d: "Saved" in d.find_element(By.ID, "settings-message").text)
    assert api.setting("orders", key) == {"value": "25", "source": "table"}
    assert api.metadata("orders")["properties"][key] == "25"

    # The view page.
    open_page(browser, server, f"/w/main/v/{NAMESPACE}/big_orders")
    assert "SELECT id FROM shop.orders" in element(browser, "pre.sql").text

    # SQL, and time travel to the first snapshot (10 rows then).
    open_page(browser, server, "/sql")
    editor = element(browser, "#sql-text")
    editor.send_keys(f'SELECT id, region FROM "{NAMESPACE}"."orders" ORDER BY id LIMIT 3')
    element(browser, "#sql-run").click()
    wait_for(browser, "the query's rows", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sql-rows tbody tr")) == 3)
    assert texts(browser, "#sql-rows thead th") == ["id", "region"]
    assert texts(browser, "#sql-rows tbody td:first-child") == ["5", "6", "7"]
    shoot(browser, screenshots, "sql")
    shoot_element(browser, screenshots, "#main", "part-sql")
    first = min(metadata["snapshots"], key=lambda s: s["sequence-number"])["snapshot-id"]
    editor.clear()
    editor.send_keys(f'SELECT count(*) AS n FROM "{NAMESPACE}"."orders" FOR VERSION AS OF {first}')
    element(browser, "#sql-run").click()
    wait_for(browser, "the time-travel count", lambda d: texts(d, "#sql-rows tbody td") == ["10"])
    editor.clear()
    editor.send_keys(f'DELETE FROM "{NAMESPACE}"."orders"')
    element(browser, "#sql-run").click()
    wait_for(browser, "the refusal", lambda d: "read-only" in d.find_element(By.ID, "sql-result").text)
    assert api.sql(f'SELECT count(*) FROM "{NAMESPACE}"."orders"')["rows"] == [["35"]]

    # The server page.
    open_page(browser, server, "/server")
    assert element(browser, "#figure-warehouses .value").text == "1"
    wait_for(browser, "the job count", lambda d: int(d.find_element(By.CSS_SELECTOR, "#figure-jobs .value").text) >= 1)
    replicas = texts(browser, "#replicas-table tbody tr")
    assert len(replicas) == 1 and replicas[0].startswith("127.0.0.1:") and "answered this page" in replicas[0], replicas
    shoot(browser, screenshots, "server")
    shoot_element(browser, screenshots, "#main", "part-server")
    no_console_errors(browser)


@pytest.fixture
def oauth2_console_server(tmp_path: Path, floe_log_dir: Path) -> Generator[FloeServer, None, None]:
    server = FloeServer(tmp_path / "data", floe_log_dir / "floe-console-oauth2.log", extra_args=["--auth", "oauth2"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sign_in(driver: WebDriver, credential: str) -> None:
    client_id, _, secret = credential.partition(":")
    element(driver, "#client-id").send_keys(client_id)
    element(driver, "#client-secret").send_keys(secret)
    element(driver, "#sign-in").click()


def test_with_auth_on_the_console_shows_nothing_before_sign_in_and_only_what_a_principal_may(
    oauth2_console_server: FloeServer, browser: WebDriver, screenshots: Path
) -> None:
    server = oauth2_console_server
    admin = AuthAdmin(server)
    catalog = RestCatalog("floe", uri=server.uri, token=admin.token)
    catalog.create_namespace(NAMESPACE)
    schema = pa.schema([("id", pa.int64())])
    for name in ["orders", "secrets"]:
        catalog.create_table(f"{NAMESPACE}.{name}", schema=schema).append(pa.table({"id": [1, 2, 3]}, schema=schema))
    reader = admin.principal_with([("read", f"table:main:{NAMESPACE}.orders")], prefix="reader")
    admin.wait_for_policy()

    # No token: the sign-in page, whatever page is asked for, and no data.
    for fragment in ["/", f"/w/main/t/{NAMESPACE}/orders", "/sql"]:
        open_page(browser, server, fragment)
        element(browser, "#sign-in-form")
        wait_for(browser, "the page to settle", loaded)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "orders" not in body and "Warehouses\n" not in body, body
        assert not browser.find_element(By.ID, "nav").is_displayed()
    shoot(browser, screenshots, "sign-in")
    shoot_element(browser, screenshots, ".sign-in", "part-sign-in")

    # A wrong secret is refused.
    sign_in(browser, f"{reader.credential.partition(':')[0]}:not-the-secret")
    wait_for(browser, "the refusal", lambda d: d.find_element(By.CSS_SELECTOR, "#sign-in-message .notice"))
    assert browser.find_elements(By.ID, "sign-in-form")

    # The reader signs in: it sees the table, but may not change its settings, nor query the other table.
    open_page(browser, server, "/")
    browser.refresh()
    sign_in(browser, reader.credential)
    wait_for(browser, "the signed-in header", lambda d: reader.name in d.find_element(By.ID, "who").text)
    assert "admin privilege" in element(browser, "#main .notice").text  # the warehouse list is admin-only
    open_page(browser, server, f"/w/main/t/{NAMESPACE}/orders")
    assert element(browser, "#table-name").text == f"{NAMESPACE}.orders"
    wait_for(browser, "the histogram", lambda d: d.find_elements(By.CSS_SELECTOR, "svg.histogram rect.bar"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.timeline circle.snapshot")) == 1
    assert "Not allowed" in element(browser, "#jobs").text
    key = "floe.maintenance.compaction.min-input-files"
    field = element(browser, f"#settings input[data-setting='{key}']")
    field.clear()
    field.send_keys("9")
    element(browser, f"#settings button.save[data-setting='{key}']").click()
    wait_for(browser, "the denial", lambda d: "Not allowed" in d.find_element(By.ID, "settings-message").text)
    shoot(browser, screenshots, "denied")
    stored = Api(server, admin.token).setting("orders", key)
    assert stored["value"] != "9", stored

    open_page(browser, server, "/sql")
    element(browser, "#sql-text").send_keys(f'SELECT count(*) FROM "{NAMESPACE}"."orders"')
    element(browser, "#sql-run").click()
    wait_for(browser, "the count", lambda d: texts(d, "#sql-rows tbody td") == ["3"])
    editor = element(browser, "#sql-text")
    editor.clear()
    editor.send_keys(f'SELECT o.id FROM "{NAMESPACE}"."orders" o JOIN "{NAMESPACE}"."secrets" s ON o.id = s.id')
    element(browser, "#sql-run").click()
    wait_for(browser, "the denial", lambda d: "Not allowed" in d.find_element(By.ID, "sql-result").text)
    assert f"table:main:{NAMESPACE}.secrets" in element(browser, "#sql-result").text

    # Signing out forgets the token.
    element(browser, "#sign-out").click()
    element(browser, "#sign-in-form")
    assert browser.execute_script("return sessionStorage.getItem('floe.console.token')") is None

    # The administrator signs in and sees every warehouse and the server page.
    sign_in(browser, server.admin_credential or "")
    element(browser, "a.warehouse")
    open_page(browser, server, "/server")
    assert element(browser, "#figure-warehouses .value").text == "1"
    assert "oauth2" in element(browser, "#server-facts").text
    no_console_errors(browser)
