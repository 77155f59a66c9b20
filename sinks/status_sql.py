"""Set-based SQL that carries the best known status of a message into `messages`.

A status lives in `message_statuses` first. These statements rewrite a `messages` row (all of its
columns, status replaced, version recomputed) only where the best status raises its rank, so they
can run any number of times, in any order, and never lower a status.
"""

from __future__ import annotations

from schemas.rows import STATUS_RANK, MessageRow

# message_version() keeps the rank in the low 8 bits, completeness above.
RANK_BITS = 256


def rank_sql(expr: str) -> str:
    """The STATUS_RANK of a status expression, 0 for an unknown one."""
    names = ", ".join(quote(name) for name in STATUS_RANK)
    ranks = ", ".join(str(rank) for rank in STATUS_RANK.values())
    return f"transform(toString({expr}), [{names}], [{ranks}], 0)"


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _with_status(database: str, token: str) -> str:
    """The keys in `sink_keys` under `token` that have any status."""
    return (
        f"SELECT phone_number_id, message_id FROM {database}.message_statuses "
        f"WHERE (phone_number_id, message_id) IN (SELECT phone_number_id, message_id "
        f"FROM {database}.sink_keys WHERE token = {quote(token)})"
    )


def any_status(database: str, token: str) -> str:
    """A query answering 1 if a key in `sink_keys` under `token` has a status, else 0: a few ms,
    where `apply_best_status` costs tens of ms even when there is nothing to carry (history)."""
    return f"SELECT count() FROM ({_with_status(database, token)} LIMIT 1)"


def apply_best_status(database: str, token: str) -> str:
    """INSERT ... SELECT rewriting the messages keyed in `sink_keys` under `token` whose best known
    status ranks higher. The keys with any status are found first (usually few), so `messages` is
    read only for those. They filter in PREWHERE, before FINAL: with the filter in WHERE (ClickHouse
    does not move it under FINAL) every column of each granule holding one of a few dozen keys, most
    of the table, was read and merged, ~0.45 s per flush at a million messages; now ~0.14 s."""
    with_status = _with_status(database, token)
    select = []
    for column in MessageRow._fields:
        if column == "status":
            select.append("s.best_status AS status")
        elif column == "error_code":
            select.append("if(s.best_error_code IS NULL, m.error_code, s.best_error_code) AS error_code")
        elif column == "version":
            select.append(f"intDiv(m.version, {RANK_BITS}) * {RANK_BITS} + s.best_rank AS version")
        else:
            select.append(f"m.{column} AS {column}")
    columns = ", ".join(MessageRow._fields)
    return f"""INSERT INTO {database}.messages ({columns})
SELECT {", ".join(select)}
FROM (
    SELECT * FROM {database}.messages FINAL
    PREWHERE (phone_number_id, message_id) IN ({with_status})
) AS m
INNER JOIN (
    SELECT
        phone_number_id,
        message_id,
        argMax(status, {rank_sql("status")}) AS best_status,
        max({rank_sql("status")}) AS best_rank,
        argMax(error_code, {rank_sql("status")}) AS best_error_code
    FROM {database}.message_statuses
    WHERE (phone_number_id, message_id) IN ({with_status})
    GROUP BY phone_number_id, message_id
) AS s ON m.phone_number_id = s.phone_number_id AND m.message_id = s.message_id
WHERE s.best_rank > {rank_sql("m.status")}"""
