"""The schema as versioned migrations. Applied ones are never edited: change the schema by appending.

Statements use `{db}` for the database. Every table deduplicates replays: ReplacingMergeTree on the
contract key (the `version` column picks the newest, most complete row), and
`non_replicated_deduplication_window` so a retried batch with the same `insert_deduplication_token`
is written once. ReplacingMergeTree only collapses rows inside one partition, so a partition key is
always a function of the key's own columns (`webhook_errors`' `occurred_at`), or there is none.
A change ALTER cannot make (PARTITION BY, the engine) is a `Rebuild` (sinks/rebuild.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sinks.rebuild import Rebuild

# Recent insert block ids remembered per table for token deduplication.
_DEDUP = "non_replicated_deduplication_window = 1000"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str | Rebuild, ...]


_TABLES = (
    f"""
CREATE TABLE IF NOT EXISTS {{db}}.messages (
    phone_number_id String,
    waba_id String,
    message_id String,
    contact_wa_id String,
    direction LowCardinality(String),
    source LowCardinality(String),
    type LowCardinality(String),
    text String,
    media_id String,
    media_mime_type String,
    status LowCardinality(String),
    sent_at DateTime('UTC'),
    history_phase Nullable(UInt8),
    history_chunk_order Nullable(UInt32),
    raw String CODEC(ZSTD(3)),
    context_id String,
    error_code Nullable(UInt32),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(sent_at)
ORDER BY (phone_number_id, message_id)
SETTINGS {_DEDUP}
""",
    f"""
CREATE TABLE IF NOT EXISTS {{db}}.contacts (
    phone_number_id String,
    contact_wa_id String,
    full_name String,
    first_name String,
    deleted UInt8,
    changed_at DateTime('UTC'),
    waba_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (phone_number_id, contact_wa_id)
SETTINGS {_DEDUP}
""",
    f"""
CREATE TABLE IF NOT EXISTS {{db}}.history_sync (
    phone_number_id String,
    waba_id String,
    state LowCardinality(String),
    progress UInt8,
    phases_complete Array(UInt8),
    chunks_received UInt32,
    messages_received UInt64,
    error_code Nullable(UInt32),
    updated_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY phone_number_id
SETTINGS {_DEDUP}
""",
    f"""
CREATE TABLE IF NOT EXISTS {{db}}.account_events (
    waba_id String,
    phone_number String,
    event LowCardinality(String),
    event_at DateTime('UTC'),
    disconnection_info String,
    raw String
) ENGINE = ReplacingMergeTree
ORDER BY (waba_id, event, event_at, phone_number)
SETTINGS {_DEDUP}
""",
    f"""
CREATE TABLE IF NOT EXISTS {{db}}.dead_letters (
    topic LowCardinality(String),
    partition Int32,
    offset Int64,
    key String,
    error String,
    raw String CODEC(ZSTD(3)),
    failed_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(failed_at)
ORDER BY (topic, partition, offset)
TTL toDateTime(failed_at) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, {_DEDUP}
""",
    f"""
CREATE TABLE IF NOT EXISTS {{db}}.message_statuses (
    phone_number_id String,
    message_id String,
    recipient_id String,
    status LowCardinality(String),
    status_at DateTime('UTC'),
    error_code Nullable(UInt32),
    raw String CODEC(ZSTD(3))
) ENGINE = ReplacingMergeTree
ORDER BY (phone_number_id, message_id, status)
SETTINGS {_DEDUP}
""",
    f"""
CREATE TABLE IF NOT EXISTS {{db}}.webhook_errors (
    phone_number_id String,
    waba_id String,
    field LowCardinality(String),
    message_id String,
    code UInt32,
    title String,
    message String,
    details String,
    occurred_at DateTime('UTC'),
    raw String CODEC(ZSTD(3))
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (phone_number_id, occurred_at, field, message_id, code)
SETTINGS {_DEDUP}
""",
)

# Scratch for the writer: the message keys of one flush, so set-based SQL can join on them
# instead of parsing a 50k-pair literal. Rows are worthless after their flush; TTL drops them.
_SINK_KEYS = (
    """
CREATE TABLE IF NOT EXISTS {db}.sink_keys (
    token String,
    phone_number_id String,
    message_id String,
    added_at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree
PARTITION BY toStartOfHour(added_at)
ORDER BY (token, phone_number_id, message_id)
TTL added_at + INTERVAL 2 HOUR
SETTINGS ttl_only_drop_parts = 1
""",
)

# Analyst views; FINAL so they show one row per key like the tables read with `final = 1`.
_VIEWS = (
    """
CREATE VIEW IF NOT EXISTS {db}.threads AS
SELECT
    phone_number_id,
    contact_wa_id,
    any(waba_id) AS waba_id,
    count() AS messages,
    max(sent_at) AS last_at,
    argMax(message_id, (sent_at, message_id)) AS last_message_id,
    argMax(direction, (sent_at, message_id)) AS last_direction,
    argMax(type, (sent_at, message_id)) AS last_type,
    argMax(text, (sent_at, message_id)) AS last_text,
    argMax(status, (sent_at, message_id)) AS last_status
FROM {db}.messages FINAL
GROUP BY phone_number_id, contact_wa_id
""",
    """
CREATE VIEW IF NOT EXISTS {db}.sync_summary AS
SELECT
    b.phone_number_id AS phone_number_id,
    if(h.waba_id != '', h.waba_id, m.waba_id) AS waba_id,
    h.state AS history_state,
    h.progress AS history_progress,
    h.phases_complete AS history_phases_complete,
    h.chunks_received AS history_chunks_received,
    h.messages_received AS history_messages_reported,
    h.error_code AS history_error_code,
    h.updated_at AS history_updated_at,
    m.history_messages AS history_messages,
    m.echo_messages AS echo_messages,
    m.cloud_api_messages AS cloud_api_messages,
    m.messages AS messages,
    m.last_message_at AS last_message_at,
    c.contacts_alive AS contacts_alive
FROM (
    SELECT phone_number_id FROM {db}.history_sync
    UNION DISTINCT SELECT phone_number_id FROM {db}.messages
    UNION DISTINCT SELECT phone_number_id FROM {db}.contacts
) AS b
LEFT JOIN (SELECT * FROM {db}.history_sync FINAL) AS h ON h.phone_number_id = b.phone_number_id
LEFT JOIN (
    SELECT
        phone_number_id,
        any(waba_id) AS waba_id,
        countIf(source = 'history') AS history_messages,
        countIf(source = 'echo') AS echo_messages,
        countIf(source = 'cloud_api') AS cloud_api_messages,
        count() AS messages,
        max(sent_at) AS last_message_at
    FROM {db}.messages FINAL
    GROUP BY phone_number_id
) AS m ON m.phone_number_id = b.phone_number_id
LEFT JOIN (
    SELECT phone_number_id, countIf(deleted = 0) AS contacts_alive
    FROM {db}.contacts FINAL
    GROUP BY phone_number_id
) AS c ON c.phone_number_id = b.phone_number_id
""",
)

# Two changes of one entry with the same event (two ACCOUNT_VIOLATIONs) had one key, so one row.
# Only a column added in the same ALTER may join the sorting key; rows written before it have 0.
_ACCOUNT_EVENT_KEY = (
    """
ALTER TABLE {db}.account_events
    ADD COLUMN IF NOT EXISTS change_key UInt64,
    MODIFY ORDER BY (waba_id, event, event_at, phone_number, change_key)
""",
)

# Two bad items of one record had one key (topic, partition, offset), so one dead letter.
_DEAD_LETTER_ITEM = (
    """
ALTER TABLE {db}.dead_letters
    ADD COLUMN IF NOT EXISTS item UInt32,
    MODIFY ORDER BY (topic, partition, offset, item)
""",
)

# A key whose versions fall in two partitions has two rows under FINAL. A media follow-up's
# timestamp may differ from its placeholder's (and the enriched row takes it), and a record that
# fails again on another day has another `failed_at`: neither table is partitioned any more.
# Dead letters: the newest failure wins, and rows expire one by one (a part now spans days).
_ONE_PARTITION = (
    Rebuild(
        "messages",
        f"ReplacingMergeTree(version) PARTITION BY tuple() ORDER BY (phone_number_id, message_id) SETTINGS {_DEDUP}",
        "tuple()",
        "phone_number_id, message_id",
    ),
    Rebuild(
        "dead_letters",
        "ReplacingMergeTree(failed_at) PARTITION BY tuple() ORDER BY (topic, partition, offset, item) "
        f"TTL toDateTime(failed_at) + INTERVAL 30 DAY SETTINGS ttl_only_drop_parts = 0, {_DEDUP}",
        "tuple()",
        "topic, partition, offset, item",
    ),
)

# Users who hide their number (BSUIDs). Rows written before carry the BSUID, if the platform sent
# one, in their `raw` only: the user's on a message they sent, the recipient's on one the business
# sent. The defaults read it from there for those rows; new rows are written with every column.
_BSUIDS = (
    """
ALTER TABLE {db}.messages
    ADD COLUMN IF NOT EXISTS contact_user_id String DEFAULT
        JSONExtractString(raw, if(direction = 'inbound', 'from_user_id', 'to_user_id')),
    ADD COLUMN IF NOT EXISTS contact_username String DEFAULT ''
""",
    """
ALTER TABLE {db}.message_statuses
    ADD COLUMN IF NOT EXISTS recipient_user_id String DEFAULT JSONExtractString(raw, 'recipient_user_id')
""",
    """
ALTER TABLE {db}.contacts
    ADD COLUMN IF NOT EXISTS contact_user_id String DEFAULT '',
    ADD COLUMN IF NOT EXISTS username String DEFAULT '',
    ADD COLUMN IF NOT EXISTS user_key String DEFAULT contact_wa_id,
    ADD COLUMN IF NOT EXISTS merged UInt8 DEFAULT 0
""",
    f"""
CREATE TABLE IF NOT EXISTS {{db}}.user_identities (
    phone_number_id String,
    contact_user_id String,
    contact_wa_id String,
    username String,
    first_seen_at DateTime('UTC'),
    last_seen_at DateTime('UTC'),
    waba_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (phone_number_id, contact_user_id)
SETTINGS {_DEDUP}
""",
)

# One row per user (CONTRACT.md): contacts are keyed by `user_key` (rows written before keep their
# number, migration 6's default). A row keyed by a BSUID that turned out to be a phone's user is
# written again with `merged` = 1: ReplacingMergeTree's is_deleted column, so FINAL drops the key
# when its newest row says so (no setting needed; tests/integration/test_users.py).
#
# `threads` groups messages by user: the phone the message gave, else the phone linked to its BSUID
# (user_identities, newest link per BSUID), else the BSUID. The user's BSUID and username are the
# newest a message gave, else the newest link's of the user's phone. Messages are first summed per
# (phone, BSUID) pair as given, so the links join a few rows per user, not every message:
# `SELECT count() FROM threads` over 1M messages of 3,000 users takes 0.064 s, 0.14 s joining each
# message, 0.033 s grouping by number alone as migration 2 did (best of 7, 2-core AMD EPYC, chdb).
_ONE_ROW_PER_USER = (
    Rebuild(
        "contacts",
        f"ReplacingMergeTree(version, merged) ORDER BY (phone_number_id, user_key) SETTINGS {_DEDUP}",
        "",
        "phone_number_id, user_key",
    ),
    """
CREATE OR REPLACE VIEW {db}.threads AS
SELECT
    u.phone_number_id AS phone_number_id,
    u.phone AS contact_wa_id,
    u.waba_id AS waba_id,
    u.messages AS messages,
    u.last_key.1 AS last_at,
    u.last_key.2 AS last_message_id,
    u.last.1 AS last_direction,
    u.last.2 AS last_type,
    u.last.3 AS last_text,
    u.last.4 AS last_status,
    if(u.newest_bsuid != '', u.newest_bsuid, p.linked_bsuid) AS contact_user_id,
    if(u.newest_username != '', u.newest_username, p.linked_username) AS contact_username
FROM (
    SELECT
        phone_number_id,
        phone,
        any(waba_id) AS waba_id,
        sum(pair_messages) AS messages,
        max(pair_last_key) AS last_key,
        argMax(pair_last, pair_last_key) AS last,
        argMaxIf(bsuid, pair_last_key, bsuid != '') AS newest_bsuid,
        argMaxIf(pair_username, pair_username_key, pair_username != '') AS newest_username
    FROM (
        SELECT
            i.phone_number_id AS phone_number_id,
            i.waba_id AS waba_id,
            i.pair_messages AS pair_messages,
            i.pair_last_key AS pair_last_key,
            i.pair_last AS pair_last,
            i.pair_username AS pair_username,
            i.pair_username_key AS pair_username_key,
            if(i.contact_wa_id != '', i.contact_wa_id, l.linked_phone) AS phone,
            i.contact_user_id AS bsuid,
            if(phone != '', phone, bsuid) AS user
        FROM (
            SELECT
                phone_number_id,
                contact_wa_id,
                contact_user_id,
                any(waba_id) AS waba_id,
                count() AS pair_messages,
                max((sent_at, message_id)) AS pair_last_key,
                argMax((direction, type, text, status), (sent_at, message_id)) AS pair_last,
                argMaxIf(contact_username, (sent_at, message_id), contact_username != '') AS pair_username,
                maxIf((sent_at, message_id), contact_username != '') AS pair_username_key
            FROM {db}.messages FINAL
            GROUP BY phone_number_id, contact_wa_id, contact_user_id
        ) AS i
        LEFT JOIN (
            SELECT phone_number_id, contact_user_id AS linked_bsuid, contact_wa_id AS linked_phone
            FROM {db}.user_identities FINAL
        ) AS l ON l.phone_number_id = i.phone_number_id AND l.linked_bsuid = i.contact_user_id
    )
    GROUP BY phone_number_id, user, phone
) AS u
LEFT JOIN (
    SELECT
        phone_number_id,
        contact_wa_id AS linked_phone,
        argMax(contact_user_id, last_seen_at) AS linked_bsuid,
        argMax(username, last_seen_at) AS linked_username
    FROM {db}.user_identities FINAL
    GROUP BY phone_number_id, contact_wa_id
) AS p ON p.phone_number_id = u.phone_number_id AND p.linked_phone = u.phone
""",
)

# The control plane (issue 29): each number's onboarding, and the businesses erased.
_ONBOARDING = (
    f"""
CREATE TABLE IF NOT EXISTS {{db}}.onboardings (
    phone_number_id String,
    waba_id String,
    onboarded_at DateTime('UTC'),
    deadline_at DateTime('UTC'),
    is_on_biz_app UInt8,
    platform_type String,
    contacts_request_id String,
    contacts_requested_at DateTime('UTC'),
    history_request_id String,
    history_requested_at DateTime('UTC'),
    last_error String,
    updated_at DateTime('UTC'),
    step LowCardinality(String),
    contacts_begun_at DateTime('UTC'),
    history_begun_at DateTime('UTC'),
    attempt UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY phone_number_id
SETTINGS {_DEDUP}
""",
    """
CREATE TABLE IF NOT EXISTS {db}.purges (
    phone_number_id String,
    purged_at DateTime('UTC'),
    rows_deleted UInt64,
    waba_id String
) ENGINE = ReplacingMergeTree
ORDER BY (phone_number_id, purged_at)
""",
)

# The business lifecycle (issue 29), for operators. `business_lifecycle`: per WABA and number, the
# latest of the events that connect or disconnect it (others, e.g. ACCOUNT_VIOLATION, do not move
# it) and whether it is offboarded now: a removal or offboarding not followed by a reconnection.
# `undeliverable_messages`: per business, the `messages` errors 131060 (a message the API could not
# deliver, e.g. to an unsupported companion device): the business must check the app for them.
_LIFECYCLE = (
    """
CREATE VIEW IF NOT EXISTS {db}.business_lifecycle AS
SELECT
    waba_id,
    phone_number,
    argMax(e, (t, k)) AS event,
    max(t) AS event_at,
    argMax(info, (t, k)) AS disconnection_info,
    toUInt8(event IN ('PARTNER_REMOVED', 'ACCOUNT_OFFBOARDED', 'ACCOUNT_DELETED')) AS offboarded
FROM (
    SELECT waba_id, phone_number, event AS e, event_at AS t, change_key AS k, disconnection_info AS info
    FROM {db}.account_events FINAL
    WHERE event IN ('PARTNER_REMOVED', 'ACCOUNT_OFFBOARDED', 'ACCOUNT_DELETED', 'ACCOUNT_RECONNECTED', 'PARTNER_ADDED')
)
GROUP BY waba_id, phone_number
""",
    """
CREATE VIEW IF NOT EXISTS {db}.undeliverable_messages AS
SELECT
    phone_number_id,
    any(waba_id) AS waba_id,
    count() AS errors,
    max(occurred_at) AS last_at,
    argMax(message_id, occurred_at) AS last_message_id
FROM {db}.webhook_errors FINAL
WHERE code = 131060 AND field = 'messages'
GROUP BY phone_number_id
""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tables", (*_TABLES, *_SINK_KEYS)),
    Migration(2, "analyst views", _VIEWS),
    Migration(3, "account_events: one row per change", _ACCOUNT_EVENT_KEY),
    Migration(4, "dead_letters: one row per bad item", _DEAD_LETTER_ITEM),
    Migration(5, "messages, dead_letters: one partition, one row per key", _ONE_PARTITION),
    Migration(6, "users who hide their number: BSUIDs, usernames, user_identities", _BSUIDS),
    Migration(7, "contacts: one row per user; threads by user", _ONE_ROW_PER_USER),
    Migration(8, "onboardings and purges", _ONBOARDING),
    Migration(9, "business_lifecycle and undeliverable_messages views", _LIFECYCLE),
)

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree
ORDER BY version
"""
