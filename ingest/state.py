"""What the routes share: settings, the signing secret, the publisher, the metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ingest.metrics import IngestMetrics
from ingest.publisher import Publisher
from runtime.settings import Settings

log = logging.getLogger(__name__)


class InsecureConfig(RuntimeError):
    """COEX_APP_SECRET is missing and COEX_INSECURE_SKIP_SIGNATURE is not set."""


def signing_secret(settings: Settings) -> bytes | None:
    """The app secret as bytes, or None when signatures are knowingly skipped."""
    if settings.insecure_skip_signature:
        log.warning(
            "!!! COEX_INSECURE_SKIP_SIGNATURE=1: X-Hub-Signature-256 is NOT checked; anyone who can "
            "reach this service can write to Kafka. Never run like this in production. !!!"
        )
        return None
    if settings.app_secret is None or not settings.app_secret.get_secret_value():
        raise InsecureConfig(
            "COEX_APP_SECRET is not set: the ingest cannot verify X-Hub-Signature-256. Set it to the "
            "app secret, or set COEX_INSECURE_SKIP_SIGNATURE=1 for local experiments only."
        )
    return settings.app_secret.get_secret_value().encode()


@dataclass(slots=True)
class IngestState:
    settings: Settings
    secret: bytes | None
    publisher: Publisher
    metrics: IngestMetrics
