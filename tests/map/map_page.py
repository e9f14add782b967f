#!/usr/bin/env python3
"""Drives `addrspace map --html` output in a real headless Chromium (selenium).

Opens HTML_FILE as file://, takes a screenshot (saved to PNG_OUT) and checks it is not blank,
hovers the RAM range named RAM_NAME and checks the tooltip gives its lookup answer, then
zooms (button, mouse wheel, a click on the range, and in again down to a few bytes) and
checks the visible span shrinks each time. Prints `ok` at the end; any failure raises.

Usage: map_page.py HTML_FILE RAM_NAME PNG_OUT
"""

import json
import re
import sys
import tempfile

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By

html, ram_name, png = sys.argv[1], sys.argv[2], sys.argv[3]

opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
profile = tempfile.mkdtemp(prefix="addrspace-map-chromium-")
for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1400,1000"]:
    opts.add_argument(flag)
driver = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))


def span():
    """The visible window [lo, last] the page says it shows."""
    text = driver.find_element(By.ID, "span").text
    m = re.search(r"([0-9a-f]{16})-([0-9a-f]{16})", text)
    assert m, f"no span in {text!r}"
    return int(m.group(1), 16), int(m.group(2), 16)


def width(s):
    return s[1] - s[0] + 1


try:
    driver.get("file://" + html)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"script errors: {errors}"
    assert driver.find_elements(By.CSS_SELECTOR, "#map-svg rect.piece"), "nothing drawn"

    # Not blank: many colours, none covering nearly everything, and the boxes drawn in the
    # colours the page's legend gives its kinds (at least two kinds, each over 0.5% of it).
    driver.save_screenshot(png)
    img = Image.open(png).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 24)
    total = img.width * img.height
    most = max(n for n, _ in colours)
    assert len(colours) > 8, f"only {len(colours)} colours: a blank page?"
    assert most < 0.8 * total, f"one colour covers {most}/{total} pixels"
    kinds = json.loads(driver.find_element(By.ID, "map-kinds").get_attribute("textContent"))
    count = dict((c, n) for n, c in colours)
    drawn = [k for k, (hexc, _) in kinds.items()
             if count.get(tuple(int(hexc[i:i + 2], 16) for i in (1, 3, 5)), 0) > 0.005 * total]
    assert len(drawn) >= 2, f"kinds drawn: {drawn}"

    # The whole space at first.
    whole = span()
    assert whole == (0, 2**64 - 1), whole

    # Hovering a RAM range shows its lookup answer.
    ram = [r for r in driver.find_elements(By.CSS_SELECTOR, 'rect.piece[data-kind="ram"]')
           if r.get_attribute("data-name") == ram_name]
    assert ram, f"no RAM range named {ram_name!r}"
    ActionChains(driver).move_to_element(ram[0]).perform()
    tip = driver.find_element(By.ID, "tip")
    assert tip.is_displayed(), "no tooltip on hover"
    # The answer names the region on its `region` line, and gives the offset and the path.
    assert re.search(rf"^region\s+{re.escape(ram_name)} ", tip.text, re.M), tip.text
    assert re.search(r"^offset\s+0x[0-9a-f]+ ", tip.text, re.M), tip.text
    assert re.search(r"^path .*\n  container ", tip.text, re.M), tip.text

    # Zoom: the + button, then the mouse wheel, each halves the window.
    driver.find_element(By.ID, "zoom-in").click()
    after_button = span()
    assert width(after_button) == width(whole) // 2, (whole, after_button)
    ActionChains(driver).scroll_from_origin(
        ScrollOrigin.from_element(driver.find_element(By.ID, "map-svg")), 0, -120).perform()
    after_wheel = span()
    assert width(after_wheel) < width(after_button), (after_button, after_wheel)

    # A click on the RAM range zooms to it (with a margin).
    driver.find_element(By.ID, "zoom-all").click()
    assert span() == whole
    ram = [r for r in driver.find_elements(By.CSS_SELECTOR, 'rect.piece[data-kind="ram"]')
           if r.get_attribute("data-name") == ram_name]
    ram[0].click()
    zoomed = span()
    assert width(zoomed) < width(whole), zoomed
    ActionChains(driver).move_to_element(driver.find_element(By.ID, "map-svg")).perform()

    # Down to bytes.
    for _ in range(70):
        driver.find_element(By.ID, "zoom-in").click()
    assert width(span()) <= 16, span()
    print("ok")
finally:
    driver.quit()
