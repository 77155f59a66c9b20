"""Why a delivery is refused, each carrying the HTTP answer the platform gets."""

from __future__ import annotations


class Refused(Exception):
    """A delivery that is answered with `status` and written nowhere."""

    status: int = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadSignature(Refused):
    status = 401


class NotAnEnvelope(Refused):
    status = 400


class TooLarge(Refused):
    status = 413


class KafkaUnavailable(Refused):
    """Kafka did not take every record in time; the platform retries after `retry_after` s."""

    status = 503

    def __init__(self, reason: str, retry_after: int = 5) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
