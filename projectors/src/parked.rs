//! Parked streams (`parked_streams`, `parked_events`): where a projection puts a stream whose
//! event it can never apply, with every later event of that stream, so that one poison event
//! stops one stream and never the projection. The runtime parks and holds
//! ([`crate::runtime`]); `commerce dlq parked` lists, and `commerce dlq replay --stream`
//! releases a stream, whose held events the projector then applies once, in order.
//!
//! For health and status: [`count`] (one projection) and [`counts`] (all), i.e.
//! `SELECT projection, count(*) FROM parked_streams GROUP BY projection`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

/// Text as PostgreSQL takes it: a NUL (which it refuses in `text`) becomes U+FFFD. For what
/// the runtime writes about a poison event, which may itself carry a NUL.
pub fn pg_text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// A record as the runtime handles it: off the topic, or held in `parked_events`.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The record's `traceparent` header (not kept with a held event: a replayed one starts
    /// a trace of its own).
    pub traceparent: Option<String>,
}

/// The parked streams among `streams`, with the first version each holds (None: all).
pub async fn parked_of(
    conn: &mut PgConnection,
    projection: &str,
    streams: &[String],
) -> sqlx::Result<HashMap<String, Option<i64>>> {
    if streams.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT stream_id, first_version FROM parked_streams
         WHERE projection = $1 AND stream_id = ANY($2)",
    )
    .bind(projection)
    .bind(streams)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Parks `stream` from `first_version` on (None: every event of it).
pub async fn park(
    conn: &mut PgConnection,
    projection: &str,
    stream: &str,
    first_version: Option<i64>,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO parked_streams (projection, stream_id, first_version, reason)
         VALUES ($1, $2, $3, $4) ON CONFLICT (projection, stream_id) DO NOTHING",
    )
    .bind(projection)
    .bind(pg_text(stream))
    .bind(first_version)
    .bind(pg_text(reason))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What is known of a held record.
#[derive(Debug, Clone, Default)]
pub struct Held<'a> {
    pub version: Option<i64>,
    pub event_type: Option<&'a str>,
    /// The event that parked the stream, and why.
    pub poison: Option<&'a str>,
}

/// Holds `record` for the parked `stream` (a redelivered version is held once).
pub async fn hold(
    conn: &mut PgConnection,
    projection: &str,
    stream: &str,
    held: Held<'_>,
    record: &Record,
) -> sqlx::Result<()> {
    let stream = pg_text(stream);
    let inserted = sqlx::query(
        "INSERT INTO parked_events (projection, stream_id, version, event_type, poison, reason,
                                    topic, partition, source_offset, record_key, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (projection, stream_id, version) WHERE version IS NOT NULL DO NOTHING",
    )
    .bind(projection)
    .bind(&stream)
    .bind(held.version)
    .bind(held.event_type.map(pg_text))
    .bind(held.poison.is_some())
    .bind(held.poison.map(pg_text))
    .bind(&record.topic)
    .bind(record.partition)
    .bind(record.offset)
    .bind(record.key.as_deref())
    .bind(record.payload.as_deref())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        sqlx::query(
            "UPDATE parked_streams SET held_events = held_events + 1
             WHERE projection = $1 AND stream_id = $2",
        )
        .bind(projection)
        .bind(&stream)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Takes up to `limit` streams released for replay: deletes them with their held events and
/// returns the events in the order they were held (without the poison one if the operator
/// chose to drop it). The caller applies them in the same transaction.
pub async fn take_released(
    conn: &mut PgConnection,
    projection: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, Vec<Record>)>> {
    let streams: Vec<(String, bool)> = sqlx::query_as(
        "SELECT stream_id, drop_first FROM parked_streams
         WHERE projection = $1 AND released_at IS NOT NULL
         ORDER BY released_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(projection)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(streams.len());
    for (stream, drop_first) in streams {
        type Row = (
            String,
            i32,
            i64,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            bool,
            i64,
        );
        let mut rows: Vec<Row> = sqlx::query_as(
            "DELETE FROM parked_events WHERE projection = $1 AND stream_id = $2
             RETURNING topic, partition, source_offset, record_key, payload, poison, seq",
        )
        .bind(projection)
        .bind(&stream)
        .fetch_all(&mut *conn)
        .await?;
        rows.sort_by_key(|r| r.6);
        sqlx::query("DELETE FROM parked_streams WHERE projection = $1 AND stream_id = $2")
            .bind(projection)
            .bind(&stream)
            .execute(&mut *conn)
            .await?;
        let records = rows
            .into_iter()
            .enumerate()
            .filter(|(i, r)| !(drop_first && *i == 0 && r.5))
            .map(
                |(_, (topic, partition, offset, key, payload, _, _))| Record {
                    topic,
                    partition,
                    offset,
                    key,
                    payload,
                    traceparent: None,
                },
            )
            .collect();
        out.push((stream, records));
    }
    Ok(out)
}

/// How many streams `projection` has parked (for health and `projections status`).
pub async fn count(pool: &PgPool, projection: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM parked_streams WHERE projection = $1")
        .bind(projection)
        .fetch_one(pool)
        .await
}

/// How many streams each projection has parked (projections with none are absent).
pub async fn counts(pool: &PgPool) -> sqlx::Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT projection, count(*) FROM parked_streams GROUP BY projection")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// One held event, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct HeldEvent {
    pub seq: i64,
    pub version: Option<i64>,
    pub event_type: Option<String>,
    pub poison: bool,
    pub reason: Option<String>,
    pub source: String,
}

/// One parked stream, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedStream {
    pub projection: String,
    pub stream_id: String,
    pub first_version: Option<i64>,
    pub reason: String,
    pub held_events: i32,
    pub parked_at: DateTime<Utc>,
    /// Set by `dlq replay` until the projector has replayed it.
    pub released_at: Option<DateTime<Utc>>,
    pub held: Vec<HeldEvent>,
}

/// The parked streams, optionally of one projection or one stream, oldest first.
pub async fn list(
    pool: &PgPool,
    projection: Option<&str>,
    stream: Option<&str>,
) -> sqlx::Result<Vec<ParkedStream>> {
    type Row = (
        String,
        String,
        Option<i64>,
        String,
        i32,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT projection, stream_id, first_version, reason, held_events, parked_at, released_at
         FROM parked_streams
         WHERE ($1::text IS NULL OR projection = $1) AND ($2::text IS NULL OR stream_id = $2)
         ORDER BY parked_at, projection, stream_id",
    )
    .bind(projection)
    .bind(stream)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (projection, stream_id, first_version, reason, held_events, parked_at, released_at) in rows
    {
        type HeldRow = (
            i64,
            Option<i64>,
            Option<String>,
            bool,
            Option<String>,
            String,
            i32,
            i64,
        );
        let held: Vec<HeldRow> = sqlx::query_as(
            "SELECT seq, version, event_type, poison, reason, topic, partition, source_offset
             FROM parked_events WHERE projection = $1 AND stream_id = $2 ORDER BY seq",
        )
        .bind(&projection)
        .bind(&stream_id)
        .fetch_all(pool)
        .await?;
        out.push(ParkedStream {
            projection,
            stream_id,
            first_version,
            reason,
            held_events,
            parked_at,
            released_at,
            held: held
                .into_iter()
                .map(
                    |(seq, version, event_type, poison, reason, t, p, o)| HeldEvent {
                        seq,
                        version,
                        event_type,
                        poison,
                        reason,
                        source: format!("{t}:{p}:{o}"),
                    },
                )
                .collect(),
        });
    }
    Ok(out)
}

/// Releases a parked stream for replay (of one projection, or of every projection that
/// parked it); the projector applies its held events within about a second. With
/// `drop_first`, the event that parked it is not applied (it stays on the dead-letter
/// topic). Returns the projections released.
pub async fn release(
    pool: &PgPool,
    projection: Option<&str>,
    stream: &str,
    drop_first: bool,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "UPDATE parked_streams SET released_at = now(), drop_first = $3
         WHERE ($1::text IS NULL OR projection = $1) AND stream_id = $2
         RETURNING projection",
    )
    .bind(projection)
    .bind(stream)
    .bind(drop_first)
    .fetch_all(pool)
    .await
}

/// Discards a parked stream and its held events, without applying them (the operator gives
/// them up; the poison one stays on the dead-letter topic, and a rebuild or `dlq replay
/// --record` can bring them back). Returns the projections it was parked in.
pub async fn discard(
    pool: &PgPool,
    projection: Option<&str>,
    stream: &str,
) -> sqlx::Result<Vec<String>> {
    let mut tx = pool.begin().await?;
    let gone: Vec<String> = sqlx::query_scalar(
        "DELETE FROM parked_streams
         WHERE ($1::text IS NULL OR projection = $1) AND stream_id = $2
         RETURNING projection",
    )
    .bind(projection)
    .bind(stream)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM parked_events WHERE projection = ANY($1) AND stream_id = $2")
        .bind(&gone)
        .bind(stream)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(gone)
}
