"""Log records are redacted as they are made, whatever handler or formatter writes them."""

import logging
from collections.abc import Iterator

import pytest

from stagegate.client import log_redaction

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY/EXAMPLEKEY"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    original = logging.getLogRecordFactory()
    log_redaction.install()
    log_redaction.install()  # twice is once
    handler = Capture()
    logger = logging.getLogger("stagegate.test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logging.setLogRecordFactory(original)


def test_a_secret_in_the_message_or_its_arguments_is_not_logged(captured: Capture) -> None:
    log = logging.getLogger("stagegate.test.redaction")
    url = f"s3://AKIAX:{SECRET}@bucket/key"
    log.info("copying %s", url)
    log.warning("failed: %s", ValueError(f"cannot read {url}"))
    log.error(f"inline {url}")
    log.info("%(src)s then %(n)d files", {"src": url, "n": 3})
    assert captured.lines == [
        "copying s3://bucket/key",
        "failed: cannot read s3://bucket/key",
        "inline s3://bucket/key",
        "s3://bucket/key then 3 files",
    ]


def test_records_without_secrets_keep_their_arguments(captured: Capture) -> None:
    log = logging.getLogger("stagegate.test.redaction")
    log.info("%s %s %d %.1f", "GET", "/v1/stagings?state=ready", 200, 0.25)
    assert captured.lines == ["GET /v1/stagings?state=ready 200 0.2"]
