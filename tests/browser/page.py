#!/usr/bin/python3
"""Drives headless Chromium through the page of a running `leakdex serve` (tests/page.rs).

    page.py URL EXPECTATIONS.json [SCREENSHOT.png]

EXPECTATIONS gives the passwords, logins and pairs to check and their counts (0: absent). Exits
0 when every check passes, 1 when one fails, 77 when no browser can be started here (selenium,
chromium or chromedriver missing), saying why.
"""
import hashlib
import json
import re
import sys

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:
    print(f"page.py: skipped: no selenium for {sys.executable} ({e})")
    sys.exit(77)

url, expectations_path = sys.argv[1].rstrip("/"), sys.argv[2]
screenshot = sys.argv[3] if len(sys.argv) > 3 else None
expect = json.load(open(expectations_path))
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAIL: {what}")


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=900,1000", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps"]:
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
try:
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
except WebDriverException as e:
    print(f"page.py: skipped: cannot start chromium through chromedriver: {e.msg}")
    sys.exit(77)

wait = WebDriverWait(driver, 20)
secrets = []


def result_of(panel):
    box = driver.find_element(By.CSS_SELECTOR, f"#panel-{panel} .result")
    wait.until(lambda d: box.is_displayed() and box.text.strip() != "")
    return box.text


def submit(panel, fields, keep=False):
    """Types into the panel's fields (id -> text), ticks keep if asked, checks, waits."""
    box = driver.find_element(By.CSS_SELECTOR, f"#panel-{panel} .result")
    driver.execute_script("arguments[0].hidden = true; arguments[0].textContent = ''", box)
    for field, value in fields.items():
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    keep_box = driver.find_element(By.CSS_SELECTOR, f"#panel-{panel} .keep-box")
    if keep_box.is_selected() != keep:
        keep_box.click()
    # Enter in the last field submits, as a keyboard user would.
    driver.find_element(By.ID, list(fields)[-1]).send_keys(Keys.ENTER)
    return result_of(panel)


def expect_count(text, count, what):
    if count > 0:
        check(f"Found {count:,} time" in text, f"{what}: expected found {count}, page says {text!r}")
    else:
        check("Not found" in text, f"{what}: expected not found, page says {text!r}")
    check(re.search(r"Sent to this server: [0-9A-F]{5}, the first 5 hex digits", text) is not None,
          f"{what}: the result says what was sent: {text!r}")


try:
    driver.get(url + "/")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    check(driver.title == "Has this password leaked?", f"title {driver.title!r}")
    holdings = driver.find_element(By.ID, "holdings").text
    check("Passwords (SHA-1)" in holdings and "hashes" in holdings, f"holdings: {holdings!r}")

    # The hash functions that run where WebCrypto may not, against Python's.
    for sample in ["password", "", "pässwörd€ 😀", "x" * 1000, "a" * 55, "b" * 56, "c" * 64]:
        js = driver.execute_script(
            "return Array.from(window.leakdex.sha1Js(new TextEncoder().encode(arguments[0])))", sample)
        check(bytes(js) == hashlib.sha1(sample.encode()).digest(), f"sha1Js of {len(sample)} chars")
        js = driver.execute_script(
            "return Array.from(window.leakdex.md4(window.leakdex.utf16le(arguments[0])))", sample)
        try:
            md4 = hashlib.new("md4", sample.encode("utf-16-le")).digest()
        except ValueError:
            md4 = None  # OpenSSL without MD4: the known vector below still checks it
        if md4 is not None:
            check(bytes(js) == md4, f"md4 of {len(sample)} chars")
    ntlm = driver.execute_script(
        "return Array.from(window.leakdex.md4(window.leakdex.utf16le('password')))")
    check(bytes(ntlm).hex().upper() == "8846F7EAEE8FB117AD06BDD830B7586C", "NTLM('password')")
    check(driver.execute_script("return window.leakdex.normaliseLogin(' \\tAlice@Example.COM \\r\\n')")
          == "alice@example.com", "login normalisation")

    # Labelled fields, a show/hide toggle.
    for field in ["password", "login", "pair-login", "pair-password"]:
        check(len(driver.find_elements(By.CSS_SELECTOR, f"label[for={field}]")) == 1, f"label for {field}")
    password = driver.find_element(By.ID, "password")
    check(password.get_attribute("type") == "password", "the password is hidden at first")
    toggle = driver.find_element(By.CSS_SELECTOR, "#panel-password .toggle")
    toggle.click()
    check(password.get_attribute("type") == "text" and toggle.get_attribute("aria-pressed") == "true",
          "Show shows the password")
    toggle.click()
    check(password.get_attribute("type") == "password", "Hide hides it again")

    # Passwords: found, not found; the field is cleared unless asked to keep it.
    for item in expect["passwords"]:
        secrets.append(item["password"])
        text = submit("password", {"password": item["password"]})
        expect_count(text, item["count"], f"password #{expect['passwords'].index(item)}")
        check(password.get_attribute("value") == "", "the password field is cleared after a check")
    kept = expect["passwords"][0]["password"]
    submit("password", {"password": kept}, keep=True)
    check(password.get_attribute("value") == kept, "kept when asked")
    driver.find_element(By.CSS_SELECTOR, "#panel-password .keep-box").click()
    password.clear()

    # Screenshot of a found password, the result on screen.
    if screenshot:
        submit("password", {"password": expect["passwords"][0]["password"]})
        driver.save_screenshot(screenshot)

    # The account tabs, shown when their indexes are served, reached by keyboard.
    login_tab = driver.find_element(By.ID, "tab-login")
    pair_tab = driver.find_element(By.ID, "tab-pair")
    check(login_tab.is_displayed() == bool(expect.get("logins")), "the login tab shows when served")
    check(pair_tab.is_displayed() == bool(expect.get("pairs")), "the pair tab shows when served")
    if expect.get("logins"):
        driver.find_element(By.ID, "tab-password").send_keys(Keys.ARROW_RIGHT)
        check(login_tab.get_attribute("aria-selected") == "true"
              and driver.switch_to.active_element == login_tab, "ArrowRight selects the next tab")
        check(driver.find_element(By.ID, "panel-login").is_displayed(), "its panel shows")
        for item in expect["logins"]:
            secrets.append(item["login"].strip())
            text = submit("login", {"login": item["login"]})
            expect_count(text, item["count"], f"login #{expect['logins'].index(item)}")
    if expect.get("pairs"):
        pair_tab.click()
        for item in expect["pairs"]:
            secrets.extend([item["login"].strip(), item["password"]])
            text = submit("pair", {"pair-login": item["login"], "pair-password": item["password"]})
            expect_count(text, item["count"], f"pair #{expect['pairs'].index(item)}")

    # Readable at a phone's width: nothing wider than the screen.
    driver.set_window_size(375, 800)
    wide = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check(wide <= 0, f"{wide} px wider than a phone's screen")

    # What the page sent: its own origin only, GET only; ranges by 5-hex prefix with padding;
    # no password, login or whole hash anywhere in a URL or header.
    whole_hashes = set()
    for s in secrets:
        whole_hashes.add(hashlib.sha1(s.encode()).hexdigest().upper())
    requests, responses = [], {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"])
        elif message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            responses[response["url"]] = response
    check(len(requests) >= 3, f"{len(requests)} requests seen")
    ranges = 0
    for request in requests:
        address = request["url"]
        check(address.startswith(url + "/"), f"a request leaves the server: {address}")
        path = address[len(url):]
        check(request["method"] == "GET", f"{request['method']} {path}")
        check("postData" not in request, f"a body sent with {path}")
        is_range = re.fullmatch(r"/range/[0-9A-F]{5}(\?mode=(login|pair|ntlm))?", path) is not None
        check(is_range or path in ("/", "/about"), f"unexpected request {path}")
        if is_range:
            ranges += 1
            headers = {k.lower(): v for k, v in request["headers"].items()}
            check(headers.get("add-padding") == "true", f"{path} without Add-Padding")
        sent = address + json.dumps(request["headers"])
        for s in secrets:
            check(s not in sent, "a secret was sent in a request")
        for h in whole_hashes:
            check(h not in sent.upper() and h[5:] not in sent.upper(), "a hash was sent")
    expected_ranges = len(expect["passwords"]) + 1 + (1 if screenshot else 0) \
        + len(expect.get("logins", [])) + len(expect.get("pairs", []))
    check(ranges == expected_ranges, f"{ranges} range requests, expected {expected_ranges}")
    page = responses.get(url + "/")
    check(page is not None, "the page's response was seen")
    if page:
        headers = {k.lower(): v for k, v in page["headers"].items()}
        csp = headers.get("content-security-policy", "")
        check(csp.startswith("default-src 'none'") and "connect-src 'self'" in csp, f"CSP: {csp!r}")
    # The policy was never broken (a violation is reported on the console).
    for entry in driver.get_log("browser"):
        check("Content Security Policy" not in entry["message"], f"console: {entry['message']}")
finally:
    driver.quit()

if failures:
    print(f"page.py: {len(failures)} failed")
    sys.exit(1)
print(f"page.py: every check passed ({url})")
