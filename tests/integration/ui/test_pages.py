"""What the pages show: the trail filtered and paged, its CSV, each story, usage, nodes, integrity;
and markup from the ledger shown as text."""

import csv
import io
import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from integration.ledger.helpers import tamper
from integration.postgres import fresh_pg_database
from stagegate.api.app import create_app
from stagegate.ledger import AuditTrail, open_ledger
from stagegate.ledger.checkpoints import Checkpoints
from stagegate.ledger.signed_note import SignerKey
from stagegate.queues import Dispatcher, make_celery

from .conftest import BROKER_URL, Site, sign_in
from .scenes import DENIAL, DIGEST, XSS, populate

pytestmark = pytest.mark.integration


@pytest.fixture
def auditor(site: Site, client: TestClient) -> TestClient:
    assert sign_in(client, site.scene.tokens["auditor"]).status_code == 303
    return client


def seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'<tr id="seq-(\d+)">', html)]


def all_seqs(site: Site, **where: object) -> list[int]:
    return [e.seq for e in AuditTrail(site.ledger).query(**where)]  # type: ignore[arg-type]


def test_the_trail_filters_by_each_field(site: Site, auditor: TestClient) -> None:
    trail = AuditTrail(site.ledger)
    everything = trail.query()
    assert seqs(auditor.get("/ui/audit").text) == [e.seq for e in everything]
    by = {
        "user": ("bob", [e.seq for e in everything if e.actor == "bob"]),
        "action": ("policy.denied", [e.seq for e in everything if e.action == "policy.denied"]),
        "job": (site.scene.egress, [e.seq for e in everything if e.job_id == site.scene.egress]),
        "source": ("imagenet", [e.seq for e in everything if "imagenet" in e.source]),
        "project": ("speech", [e.seq for e in everything if e.actor == "bob"]),
    }
    for name, (value, expected) in by.items():
        assert expected, name
        assert seqs(auditor.get("/ui/audit", params={name: value}).text) == expected, name
    by_digest = seqs(auditor.get("/ui/audit", params={"source": DIGEST[:12]}).text)
    assert by_digest == [e.seq for e in everything if e.manifest_digest == DIGEST]
    assert by_digest
    # The egress's events carry its project in their details; bob's none of sam's.
    vision = seqs(auditor.get("/ui/audit", params={"project": "vision"}).text)
    assert set(vision) == {e.seq for e in everything if e.actor == "sam"}


def test_the_trail_filters_by_time(site: Site, auditor: TestClient) -> None:
    everything = AuditTrail(site.ledger).query()
    middle = everything[len(everything) // 2]
    since = middle.time.strftime("%Y-%m-%dT%H:%M:%S.%f")
    shown = seqs(auditor.get("/ui/audit", params={"since": since}).text)
    assert shown == [e.seq for e in everything if e.time >= middle.time]
    assert 0 < len(shown) < len(everything)
    until = seqs(auditor.get("/ui/audit", params={"until": since}).text)
    assert until == [e.seq for e in everything if e.time < middle.time]


def test_the_trail_pages_by_seq(site: Site, auditor: TestClient) -> None:
    everything = all_seqs(site)
    seen: list[int] = []
    url = "/ui/audit?size=3"
    while True:
        html = auditor.get(url).text
        seen += seqs(html)
        found = re.search(r'<a href="([^"]+)" id="next">', html)
        if found is None:
            break
        url = found.group(1).replace("&amp;", "&")
        assert "size=3" in url
    assert seen == everything and len(everything) > 6


def test_bad_filters_are_a_page_saying_why(auditor: TestClient) -> None:
    response = auditor.get("/ui/audit", params={"since": "last tuesday"})
    assert response.status_code == 400 and "since must be a time" in response.text


def test_the_csv_is_the_cli_export(site: Site, auditor: TestClient) -> None:
    response = auditor.get("/ui/audit.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="stagegate-audit.csv"'
    exported = io.StringIO()
    AuditTrail(site.ledger).export("csv", exported)
    assert response.text == exported.getvalue()
    filtered = auditor.get("/ui/audit.csv", params={"project": "speech"})
    rows = list(csv.DictReader(io.StringIO(filtered.text)))
    assert {r["job_id"] for r in rows} == {e.job_id for e in AuditTrail(site.ledger).query(actor="bob")}
    assert site.scene.denied in {r["job_id"] for r in rows}
    assert "project-speech" in filtered.headers["content-disposition"]


def test_the_story_of_a_staging(site: Site, auditor: TestClient) -> None:
    html = auditor.get(f"/ui/stagings/{site.scene.done}").text
    assert 'id="state">released<' in html
    assert "s3://datasets/vision/imagenet/" in html and "train-42" in html
    assert 'id="outcome">allowed at ' in html and "7651f3c695a8" in html and DIGEST in html
    copies = html.split('id="copies"')[1].split("</section>")[0]
    assert copies.count("/nvme/stagegate/datasets/" + DIGEST) == 2  # a copy on each node, where it was
    assert ">gpu-01<" in html and ">gpu-02<" in html
    assert re.search(r'id="completed">\d{4}-\d\d-\d\d ', html)
    assert re.search(r'id="released">\d{4}-\d\d-\d\d [^<]* by sam<', html)
    assert 'id="trail"' in html and html.count('<tr id="seq-') == len(
        [e for e in AuditTrail(site.ledger).query() if e.job_id == site.scene.done]
    )


def test_a_denied_staging_shows_the_reasons(site: Site, auditor: TestClient) -> None:
    html = auditor.get(f"/ui/stagings/{site.scene.denied}").text
    assert 'id="state">denied<' in html and 'id="outcome">denied at' in html
    assert DENIAL in html and "confidential" in html


def test_the_owner_sees_the_story_but_not_the_trail_rows(site: Site, client: TestClient) -> None:
    sign_in(client, site.scene.tokens["scientist"])
    html = client.get(f"/ui/stagings/{site.scene.done}").text
    assert 'id="outcome">allowed at ' in html and 'id="released">' in html
    assert 'id="trail"' not in html and "seq-" not in html
    assert "Audit trail</a>" not in html  # not in the menu either
    egress = client.get(f"/ui/egress/{site.scene.egress}").text
    assert "checkpoint-1500" in egress and 'id="trail"' not in egress


def test_the_story_of_an_egress(site: Site, auditor: TestClient) -> None:
    html = auditor.get(f"/ui/egress/{site.scene.egress}").text
    assert 'id="state">completed<' in html
    assert 'id="destination">s3://models/vision/run-7<' in html
    assert "the latest 1; the best by eval_loss (min)" in html
    for name in ("checkpoint-1500", "checkpoint-2000"):
        assert f"<td>{name}</td><td>public</td><td>lineage:train-42</td>" in html
    assert "crc64nvme:0000000000000001" in html and "checkpoint-2000/model.safetensors" in html
    assert "/nvme/runs/sam/run-7/checkpoint-500: 2.9 MB" in html
    assert "under the egress rule s3://models/" in html


def test_markup_in_the_ledger_is_shown_as_text(site: Site, auditor: TestClient) -> None:
    pages = [
        auditor.get("/ui/audit").text,
        auditor.get("/ui/audit", params={"source": XSS}).text,
        auditor.get(f"/ui/stagings/{site.scene.marked_up}").text,
        auditor.get("/ui/stagings").text,
    ]
    for html in pages:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script" not in html


def test_others_stagings_are_not_found(site: Site, client: TestClient) -> None:
    sign_in(client, site.scene.tokens["other"])
    mine = client.get(f"/ui/stagings/{site.scene.denied}")
    theirs = client.get(f"/ui/stagings/{site.scene.done}")
    nothing = client.get("/ui/stagings/00000000-0000-0000-0000-000000000000")
    assert (mine.status_code, theirs.status_code, nothing.status_code) == (200, 404, 404)
    assert client.get("/ui/egress/" + "e" * 5000).status_code == 404
    assert "s3://datasets/vision" not in theirs.text


def test_usage_table_and_chart(site: Site, auditor: TestClient) -> None:
    html = auditor.get("/ui/usage").text
    chart = re.search(r"<svg .*?</svg>", html, re.S)
    assert chart is not None
    bars = re.findall(r'<rect [^>]*width="([\d.]+)"', chart.group(0))
    assert len(bars) == html.count("<tr><td>20")  # one bar per table row
    assert max(float(b) for b in bars) > 0
    assert "sam" in chart.group(0) and ">12.0 MB<" in html  # sam's staging: 6 MB on each of two nodes
    by_project = auditor.get("/ui/usage", params={"by": "project", "metric": "bytes_egressed"}).text
    assert "vision" in by_project and "6.0 MB" in by_project
    assert auditor.get("/ui/usage", params={"metric": "dollars"}).status_code == 400


def test_nodes_and_their_caches(site: Site, auditor: TestClient) -> None:
    html = auditor.get("/ui/nodes").text
    assert 'id="node-gpu-01"' in html and 'id="node-gpu-02"' in html
    assert html.count(DIGEST[:16]) == 2 and "alive" in html


def test_integrity_verifies_the_chain_now(site: Site, auditor: TestClient) -> None:
    html = auditor.get("/ui/integrity").text
    head = AuditTrail(site.ledger).head()
    assert head is not None
    assert f"Intact: {head[0]} events checked" in html and head[1] in html
    assert 'id="no-checkpoint"' in html


def test_integrity_shows_the_latest_checkpoint_and_whether_the_trail_extends_it(pg_admin: sa.Engine) -> None:
    with fresh_pg_database(pg_admin, migrated=True) as url, open_ledger(url) as ledger:
        scene = populate(ledger)
        key = SignerKey.generate("stagegate.local/audit")
        signed = Checkpoints(ledger, origin="stagegate.local/audit", signer=lambda: key).sign()
        celery_app = make_celery(BROKER_URL)
        try:
            app = create_app(ledger, Dispatcher(celery_app), decision_wait=0)
            with TestClient(app, follow_redirects=False) as client:
                sign_in(client, scene.tokens["auditor"])
                intact = client.get("/ui/integrity").text
                tamper(url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
                broken = client.get("/ui/integrity").text
        finally:
            celery_app.close()
    assert "its signature checks, and the trail as it is now extends it" in intact
    assert f"over the first {signed.size} events" in intact and 'id="checkpoint-text"' in intact
    assert "the trail no longer extends it" in broken and "altered row at seq 1" in broken


def test_integrity_names_a_tampered_row(pg_admin: sa.Engine) -> None:
    with fresh_pg_database(pg_admin, migrated=True) as url, open_ledger(url) as ledger:
        scene = populate(ledger)
        tamper(url, "UPDATE audit_events SET bytes = bytes + 1 WHERE seq = 3")
        celery_app = make_celery(BROKER_URL)
        try:
            app = create_app(ledger, Dispatcher(celery_app), decision_wait=0)
            with TestClient(app, follow_redirects=False) as client:
                sign_in(client, scene.tokens["auditor"])
                html = client.get("/ui/integrity").text
        finally:
            celery_app.close()
    assert 'id="verdict">Broken: altered row at seq 3' in html and "2 events were good" in html
