"""Whether a failed ClickHouse write is worth retrying as it is, read from ClickHouse's error code.

clickhouse-connect, chdb and the owner's endpoint (sinks/remote.py, whose `RemoteError` passes the
server's message through) all say `Code: N. DB::Exception: ...`. A failure without a code is the
transport's: the server away, a connection dropped, a timeout, so retriable. A code in `REFUSED` is
ClickHouse refusing what was sent (a value, a block too wide): the same rows fail every time, so the
writer splits the batch to find them (sinks/writer.py). Any other code (the disk, memory, too many
parts, a table not there yet) is about the server, not the rows: retried, and an alert once it lasts.
"""

from __future__ import annotations

import re
from enum import Enum

_CODE = re.compile(r"\bCode: (\d+)\.")

TOO_MANY_PARTS = 252  # also "Too many partitions for single INSERT block", which the rows decide

# Codes of rows ClickHouse will not take, whenever they are sent.
REFUSED: frozenset[int] = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        190,  # SIZES_OF_ARRAYS_DONT_MATCH
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        407,  # DECIMAL_OVERFLOW (a DateTime64 from NaN or infinity)
        469,  # VIOLATED_CONSTRAINT
    }
)


class Failure(Enum):
    RETRIABLE = "retriable"  # the server or the way to it: the same write may pass later
    REFUSED = "refused"  # the rows: the same write fails every time


def error_code(message: str) -> int | None:
    """ClickHouse's error code in an error's text, None when it has none (a transport error)."""
    match = _CODE.search(message)
    return int(match.group(1)) if match else None


def classify(message: str) -> Failure:
    code = error_code(message)
    if code in REFUSED:
        return Failure.REFUSED
    if code == TOO_MANY_PARTS and "Too many partitions for single INSERT block" in message:
        return Failure.REFUSED
    return Failure.RETRIABLE


def refused(exc: BaseException) -> bool:
    """Whether `exc`, raised by an insert, says ClickHouse refuses the rows themselves."""
    return classify(str(exc)) is Failure.REFUSED
