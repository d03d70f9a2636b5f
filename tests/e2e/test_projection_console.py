"""The operators' console in headless Chromium: search, open a case, see the dashboard and the map."""

from __future__ import annotations

from devtools.sample import hotline_order
from tests.browser import support
from tests.e2e.test_walking_skeleton import wait_for_case

OPERATOR_KEY = "dev-operator-key"
# The browser fixtures (Debian chromium under Playwright, screenshot folder), used by name below.
browser, page, artifacts = support.browser, support.page, support.artifacts


async def test_an_operator_searches_opens_a_case_and_sees_the_dashboard_and_map(
    system, intake, cases, page, artifacts
):
    orders = [hotline_order(k, seed=808) for k in range(1, 4)]
    orders[0] = {**orders[0], "content": "绣水大街井盖缺失，夜间行人容易跌倒。"}
    case_ids = [intake.post("/v1/intake/hotline", json=o).json()["case_id"] for o in orders]
    for case_id in case_ids:
        wait_for_case(cases, case_id)
    console = f"{system.url('projection')}/console/"

    await page.goto(console)
    assert (await page.title()).startswith("章丘区")
    await page.fill("#api-key", OPERATOR_KEY)
    await page.click("#key-form button")
    await page.fill("#search-form input[name=q]", "井盖缺失")
    await page.click("#search-button")
    row = page.locator(f"#results tbody tr[data-case='{case_ids[0]}']")
    await row.wait_for()
    assert await page.locator("#results tbody tr").count() == 1  # only the case that says it
    await page.screenshot(path=str(artifacts / "console-search.png"), full_page=True)

    await row.click()
    await page.locator("#timeline li").first.wait_for()
    assert case_ids[0] in await page.locator("#view-case h2").inner_text()
    assert "受理" in await page.locator("#timeline").inner_text()
    facts = await page.locator("#view-case dl.facts").inner_text()
    assert "联系电话" in facts and "****" in facts and "HTMLElement" not in facts
    assert orders[0]["caller_phone"] not in await page.content()  # only the masked number reaches the page
    await page.screenshot(path=str(artifacts / "console-case.png"), full_page=True)

    await page.click("nav a[data-view=dashboard]")
    await page.locator("#chart-daily svg rect.bar").first.wait_for()
    received = int(await page.locator("#tiles .tile b").first.inner_text())
    assert received >= len(case_ids)
    assert await page.locator("#chart-town svg rect.bar").count() >= 1
    await page.screenshot(path=str(artifacts / "console-dashboard.png"), full_page=True)

    await page.click("nav a[data-view=map]")
    await page.locator("#map svg rect.map-frame").wait_for()
    await page.screenshot(path=str(artifacts / "console-map.png"), full_page=True)
    assert (artifacts / "console-dashboard.png").stat().st_size > 0


async def test_the_console_without_a_key_says_the_query_failed(system, page):
    await page.goto(f"{system.url('projection')}/console/#/search")
    await page.click("#search-button")
    await page.wait_for_function("document.querySelector('#search-status').textContent.includes('查询失败')")
    assert "API key" in await page.locator("#search-status").inner_text()
