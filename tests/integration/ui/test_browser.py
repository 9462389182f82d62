"""The pages in a real browser: Debian's headless Chromium, driven by playwright, against the app
served by uvicorn on loopback. What a person would do and see: sign in, filter the trail, open a
staging, export CSV; and a scientist, who has no trail to see."""

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stagegate.ledger import AuditTrail
from stagegate.ledger.checkpoints import Checkpoints
from stagegate.ledger.signed_note import SignerKey
from stagegate.settings import load_settings

from .conftest import Site
from .scenes import DENIAL, XSS

pytestmark = pytest.mark.integration

# Set to a directory to keep a screenshot of each page (the README's come from here).
SHOTS = os.environ.get("STAGEGATE_UI_SCREENSHOTS")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def shoot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))  # the first screenful


def sign_in(page: Any, served: str, token: str) -> None:
    page.goto(f"{served}/ui/")
    assert page.url.startswith(f"{served}/ui/login?next=")
    shoot(page, "login")
    page.fill("#token", token)
    page.click("button[type=submit]")


def test_an_auditor_finds_a_staging_and_exports_the_trail(
    site: Site, served: str, page: Any, tmp_path: Path
) -> None:
    sign_in(page, served, site.scene.tokens["auditor"])
    assert page.url == f"{served}/ui/audit"
    assert page.inner_text("#who").startswith("ada (auditor")
    everything = AuditTrail(site.ledger).query()
    assert page.locator("table.events tbody tr").count() == len(everything)
    cookie = next(c for c in page.context.cookies() if c["name"] == "stagegate_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert site.scene.tokens["auditor"] not in (cookie["value"], page.url, page.content())
    # Script cannot read the session cookie.
    assert "stagegate_ui" not in page.evaluate("document.cookie")

    # The markup in a staging's source is shown as text: no script ran, no element was made.
    assert XSS in page.inner_text("table.events")
    assert page.locator("table.events script").count() == 0
    shoot(page, "trail")

    page.fill("input[name=user]", "bob")
    page.select_option("select[name=action]", "policy.denied")
    page.click("#filters button[type=submit]")
    rows = page.locator("table.events tbody tr")
    assert rows.count() == 1
    assert "user=bob" in page.url and "action=policy.denied" in page.url
    assert DENIAL in rows.first.inner_text()
    assert page.input_value("input[name=user]") == "bob"

    with page.expect_download() as download_info:
        page.click("#csv")
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert download.suggested_filename == "stagegate-audit_action-policy.denied_user-bob.csv"
    [row] = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert (row["actor"], row["action"], row["job_id"]) == ("bob", "policy.denied", site.scene.denied)

    page.click("a[href='/ui/audit']")  # clear the filter, then follow sam's staging
    page.fill("input[name=source]", "imagenet")
    page.click("#filters button[type=submit]")
    page.locator(f"table.events a[href='/ui/stagings/{site.scene.done}']").first.click()
    assert page.url == f"{served}/ui/stagings/{site.scene.done}"
    assert page.inner_text("#state") == "released"
    assert page.inner_text("#source") == "s3://datasets/vision/imagenet/"
    assert page.inner_text("#outcome").startswith("allowed at ")
    copies = page.locator("#copies tbody tr")
    assert copies.count() == 2
    for i, node in enumerate(("gpu-01", "gpu-02")):  # both copied whole, then let go
        cells = copies.nth(i).locator("td").all_inner_texts()
        assert cells[:4] == [node, "released", "12 / 12", "6.0 MB / 6.0 MB"]
    assert page.inner_text("#released").endswith("by sam")
    assert page.locator("#trail table.events tbody tr").count() == len(
        [e for e in everything if e.job_id == site.scene.done]
    )
    shoot(page, "staging")

    # The service has signed a checkpoint of the trail as it is now (as its workers do).
    origin = load_settings().checkpoint_origin
    key = SignerKey.generate(origin)
    signed = Checkpoints(site.ledger, origin=origin, signer=lambda: key).sign()
    for path, name in (
        (f"/ui/egress/{site.scene.egress}", "egress"),
        ("/ui/usage", "usage"),
        ("/ui/nodes", "nodes"),
        ("/ui/integrity", "integrity"),
    ):
        page.goto(served + path)
        assert page.locator("h1").count() == 1
        shoot(page, name)
    assert page.inner_text("#verdict").startswith("Intact:")
    assert page.inner_text("#checkpoint-verdict") == (
        f"Signed by {origin}+{key.id:08x} over the first {len(everything)} events; "
        "its signature checks, and the trail as it is now extends it."
    )
    assert page.inner_text("#checkpoint-text") == signed.note
    page.goto(served + "/ui/usage")
    assert page.locator("#chart svg rect.bar").count() >= 1

    page.click("text=Sign out")
    assert page.url == f"{served}/ui/login"
    assert not [c for c in page.context.cookies() if c["name"] == "stagegate_ui"]
    page.goto(f"{served}/ui/audit")
    assert page.url.startswith(f"{served}/ui/login")


def test_a_scientist_sees_own_stagings_and_no_trail(site: Site, served: str, page: Any) -> None:
    sign_in(page, served, site.scene.tokens["scientist"])
    assert page.url == f"{served}/ui/stagings"
    assert page.locator("nav a", has_text="Audit trail").count() == 0
    listed = page.locator("tbody tr").all_inner_texts()
    assert listed and all("sam" in row for row in listed)
    assert site.scene.denied[:8] not in page.content()  # bob's
    shoot(page, "scientist-stagings")

    response = page.goto(f"{served}/ui/audit")
    assert response is not None and response.status == 403
    assert "you are signed in as scientist" in page.inner_text("#error")
    response = page.goto(f"{served}/ui/stagings/{site.scene.denied}")
    assert response is not None and response.status == 404

    page.goto(f"{served}/ui/stagings/{site.scene.done}")
    assert page.inner_text("#outcome").startswith("allowed at ")
    assert page.locator("#trail").count() == 0


def test_a_job_token_cannot_sign_in(site: Site, served: str, page: Any) -> None:
    sign_in(page, served, site.scene.tokens["job"])
    assert "cannot sign in" in page.inner_text("#error")
    assert not [c for c in page.context.cookies() if c["name"] == "stagegate_ui"]
