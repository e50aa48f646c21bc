"""The operator's console in a real browser (headless Chromium from
Debian, driven by Selenium): sign in, the access matrix shows the policy,
the log takes new rows live, a request for approval appears in the open
inbox by itself and approving it lets the agent's retried call through,
a cell opens onto its tools and rules, the question box reads the object
a verdict depends on, an access change (a grant, a zone) shows its diff
and, confirmed, changes the agent's tools and reach, a write is undone from its row after the undo's preview, the
health page; every page passes axe-core's WCAG 2 A/AA rules with no
serious or critical violation and can be walked with the keyboard.
Screenshots of each page go to <screenshots>.

    console_browser.py <admin URL> <operator key> <MCP URL> <ops key> <dns-editor key> <axe.min.js> <screenshots>
"""

import asyncio
import os
import sys
import time

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait

from checks import check

EXAMPLE_COM = "023e105f4ecef8ad9ca31a8372d0c353"
WWW = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3"
EXAMPLE_ORG = "5a7805061c76ada191ed06f989cc3dac"
ADMIN, OPERATOR_KEY, MCP_URL, OPS_KEY, EDITOR_KEY, AXE, SHOTS = sys.argv[1:8]
ADMIN = ADMIN.rstrip("/")


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]:
        options.add_argument(flag)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


async def agent_call(tool, arguments, key=None):
    """One call by an agent (ops unless another key is given) through the
    Python MCP SDK; `tool` None lists the agent's tools instead."""
    headers = {"Authorization": f"Bearer {key or OPS_KEY}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                if tool is None:
                    return {t.name for t in (await session.list_tools()).tools}
                return await session.call_tool(tool, arguments)


def accessible(driver, page):
    """axe-core's WCAG 2 A and AA rules: no serious or critical violation."""
    with open(AXE, encoding="utf-8") as source:
        driver.execute_script(source.read())
    violations = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']}).then(r => done(r.violations));")
    bad = [f"{v['id']} ({v['impact']})" for v in violations if v["impact"] in ("serious", "critical")]
    check(not bad, f"{page}: no serious accessibility violation {bad}")


def shot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def main():
    os.makedirs(SHOTS, exist_ok=True)
    driver = browser()
    wait = WebDriverWait(driver, 15)
    try:
        driver.get(f"{ADMIN}/console")
        wait.until(seen.url_contains("/console/login"))
        check(driver.find_element(By.CSS_SELECTOR, "label[for=key]").text != "", "the key field has a label")
        driver.find_element(By.ID, "key").send_keys(OPERATOR_KEY + Keys.ENTER)
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "table.matrix")))
        cells = {row.find_element(By.TAG_NAME, "th").text: [c.text for c in row.find_elements(By.TAG_NAME, "td")]
                 for row in driver.find_elements(By.CSS_SELECTOR, "table.matrix tbody tr")}
        check(set(cells) == {"auditor", "site-deployer", "dns-editor", "ops"}, f"the matrix has every agent ({sorted(cells)})")
        headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "table.matrix thead th")]
        workers = headers.index("Workers") - 1
        check(cells["site-deployer"][workers] == "Full", "site-deployer has Full on Workers")
        check(cells["auditor"][workers] == "Read", "auditor has Read on Workers")
        check(cells["ops"][workers] == "Off", "ops has nothing on Workers")
        shot(driver, "access")
        accessible(driver, "access")

        # A cell opens in place onto what stands behind it.
        row = driver.find_element(By.XPATH, "//table[@class='matrix']//tr[th='site-deployer']")
        cell = row.find_elements(By.TAG_NAME, "td")[workers]
        cell.find_element(By.TAG_NAME, "summary").click()
        behind = cell.text
        check("put_worker_script" in behind and "site-*" in behind and "60 calls per minute" in behind,
              f"the cell shows its tools, rules and limits ({behind!r})")
        shot(driver, "access-cell")
        accessible(driver, "an open cell")

        # What may an agent do: the verdict that depends on the record is
        # undecided until the console is asked to read it.
        ask = driver.find_element(By.CSS_SELECTOR, "form[action='/console/explain']")
        Select(ask.find_element(By.NAME, "agent")).select_by_value("dns-editor")
        ask.find_element(By.NAME, "tool").send_keys("delete_dns_record")
        ask.find_element(By.NAME, "args").send_keys(
            '{"zone_id": "%s", "dns_record_id": "%s"}' % (EXAMPLE_COM, WWW))
        ask.find_element(By.NAME, "read").click()
        ask.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "Read to decide" in d.page_source)
        said = driver.find_element(By.CSS_SELECTOR, "[role=status]").text
        check(said.startswith("denied") and "*.staging.example.com" in said,
              f"read, www.example.com is outside dns-editor's rule ({said!r})")
        shot(driver, "explain")
        accessible(driver, "explain")

        # The keyboard reaches the navigation first.
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        check(driver.switch_to.active_element.text == "Access", "Tab reaches the first navigation link")

        # The log takes a new row without a reload.
        driver.get(f"{ADMIN}/console/log")
        before = len(driver.find_elements(By.CSS_SELECTOR, "#log tbody tr"))
        listed = asyncio.run(agent_call("list_dns_records", {"zone_id": EXAMPLE_COM}))
        check(not listed.is_error, "the agent's call succeeds")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log tbody tr")) > before)
        check("list_dns_records" in driver.find_element(By.ID, "log").text, "the new row appears live")
        shot(driver, "log")
        accessible(driver, "log")

        # A request for approval appears in the open inbox by itself.
        driver.get(f"{ADMIN}/console/approvals")
        check("Waiting (0)" in driver.page_source, "the inbox starts empty")
        asked = asyncio.run(agent_call("delete_dns_record", {"zone_id": EXAMPLE_COM, "dns_record_id": WWW}))
        check(asked.is_error, "the delete waits for a person")
        said = asked.content[0].text
        request = said[said.index("approval ") + 9:][:32]
        wait.until(lambda d: request in d.page_source)
        check("Waiting (1)" in driver.page_source, "the request appears without a reload")
        shot(driver, "approvals")
        accessible(driver, "approvals")
        driver.find_element(By.CSS_SELECTOR, f"form[action='/console/approvals/{request}'] button[value=approve]").click()
        wait.until(lambda d: "Waiting (0)" in d.page_source)
        check("(console)" in driver.page_source, "the decision names the operator")
        done = asyncio.run(agent_call("delete_dns_record", {
            "zone_id": EXAMPLE_COM, "dns_record_id": WWW, "approval_id": request}))
        check(not done.is_error, "approved in the console, the agent's retried call goes through")

        # Access changed from the console: the diff, then the agent's tools.
        check("list_zones" not in asyncio.run(agent_call(None, None)), "ops starts without list_zones")
        driver.get(f"{ADMIN}/console")
        form = driver.find_element(By.ID, "change-grant")
        for name, value in [("agent", "ops"), ("group", "zones"), ("level", "read")]:
            Select(form.find_element(By.NAME, name)).select_by_value(value)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "It checks" in d.page_source)
        diff = driver.find_element(By.CSS_SELECTOR, "pre.diff").text
        check('+grants = { dns = "full", zones = "read" }' in diff, f"the exact change is shown ({diff!r})")
        shot(driver, "change")
        accessible(driver, "change access")
        driver.find_element(By.XPATH, "//button[text()='Write the change']").click()
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "table.matrix")))
        check("list_zones" in asyncio.run(agent_call(None, None)), "the agent sees the new grant's tools")

        # A zone added to ops from its details: the diff, then its reach.
        outside = asyncio.run(agent_call("list_dns_records", {"zone_id": EXAMPLE_ORG}))
        check(outside.is_error, "ops cannot read example.org's records")
        driver.find_element(By.CSS_SELECTOR, "#agent-ops summary").click()
        zones = driver.find_element(By.XPATH, "//details[@id='agent-ops']//form[input[@name='kind' and @value='zones']]")
        field = zones.find_element(By.NAME, "values")
        field.clear()
        field.send_keys("example.com, example.org")
        zones.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "It checks" in d.page_source)
        diff = driver.find_element(By.CSS_SELECTOR, "pre.diff").text
        check('+zones = ["example.com", "example.org"]' in diff, f"the zone change is shown ({diff!r})")
        driver.find_element(By.XPATH, "//button[text()='Write the change']").click()
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "table.matrix")))
        inside = asyncio.run(agent_call("list_dns_records", {"zone_id": EXAMPLE_ORG}))
        check(not inside.is_error, "ops now reads example.org's records")

        # A write undone from its row, after the undo's preview.
        made = asyncio.run(agent_call("create_dns_record", {
            "zone_id": EXAMPLE_COM, "type": "A", "name": "browser.staging.example.com",
            "content": "192.0.2.9"}, key=EDITOR_KEY))
        check(not made.is_error, "dns-editor creates a record")
        driver.get(f"{ADMIN}/console/log?tool=create_dns_record")
        driver.find_elements(By.CSS_SELECTOR, "#log tbody tr td a")[-1].click()
        driver.find_element(By.PARTIAL_LINK_TEXT, "Undo this call").click()
        wait.until(lambda d: "delete_dns_record" in d.page_source)
        check("browser.staging.example.com" in driver.page_source, "the preview shows what the undo removes")
        shot(driver, "undo")
        accessible(driver, "undo preview")
        driver.find_element(By.XPATH, "//button[starts-with(text(), 'Undo row')]").click()
        wait.until(lambda d: "Cloudflare answered" in d.page_source)
        listed = asyncio.run(agent_call("list_dns_records", {"zone_id": EXAMPLE_COM}, key=EDITOR_KEY))
        names = [r["name"] for r in listed.structured_content["result"]]
        check("browser.staging.example.com" not in names, "the record is gone")

        driver.get(f"{ADMIN}/console/health")
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "svg.chart")))
        shot(driver, "health")
        accessible(driver, "health")
    finally:
        driver.quit()


main()
