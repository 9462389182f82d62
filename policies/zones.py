"""Where data is going: the staging zone (node NVMe) or an egress destination URL."""

from dataclasses import dataclass
from typing import Literal

from stagegate.errors import InvalidInputError

ZoneKind = Literal["staging", "egress"]


@dataclass(frozen=True, slots=True)
class Zone:
    """A destination a policy decides about. Build one with :meth:`staging` or :meth:`egress`."""

    kind: ZoneKind
    url: str | None = None

    @classmethod
    def staging(cls) -> "Zone":
        """The staging zone: node-local NVMe of the GPU nodes."""
        return cls("staging")

    @classmethod
    def egress(cls, url: str) -> "Zone":
        """An egress destination such as ``s3://models/run-7`` or ``/mnt/share/out``.

        Raises :class:`InvalidInputError` for an empty URL, a control character, or a ``.``
        or ``..`` path segment: egress rules match by prefix, and ``/public/../secret``
        must not pass as a destination under ``/public``.
        """
        if not isinstance(url, str) or not url:
            raise InvalidInputError("an egress destination URL is required")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
            raise InvalidInputError(f"egress destination {url!r} contains a control character")
        if any(segment in (".", "..") for segment in url.split("/")):
            raise InvalidInputError(f"egress destination {url!r} has a '.' or '..' segment; give it resolved")
        return cls("egress", url)

    @property
    def is_staging(self) -> bool:
        return self.kind == "staging"

    def describe(self) -> str:
        """``staging`` or ``egress to <url>``: for reasons and logs."""
        return "staging" if self.url is None else f"egress to {self.url}"

    def to_dict(self) -> dict[str, str]:
        """``{"kind": "staging"}`` or ``{"kind": "egress", "url": ...}``: for audit records."""
        return {"kind": self.kind} if self.url is None else {"kind": self.kind, "url": self.url}
