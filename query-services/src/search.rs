//! Catalogue search over the `products` read model: `websearch_to_tsquery` against a weighted
//! `tsvector` (GIN-indexed), filters, six sort orders, and Relay cursor pagination by keyset.
//!
//! A cursor is the sort order, the row's sort key (as PostgreSQL's text form, which casts back
//! exactly) and its id, base64url-encoded: paging never skips or repeats a row, whatever is
//! inserted meanwhile, and each page is one indexed range scan instead of an `OFFSET`.

use crate::QueryError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proto::queries::{Page, SearchProductsRequest};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// The largest page.
pub const MAX_PAGE: u32 = 100;
/// The longest cursor accepted (the ones this service makes are well under 200 characters).
pub const MAX_CURSOR_LEN: usize = 1024;
/// The page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE: u32 = 20;

/// A sort order: its key expression, the key's SQL type, and whether it descends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Relevance,
    Newest,
    PriceAsc,
    PriceDesc,
    Name,
    Rating,
}

impl Sort {
    /// Parses the request's sort; relevance needs a query and falls back to newest without.
    pub fn parse(s: &str, has_query: bool) -> Result<Self, QueryError> {
        let sort = match s.trim().to_ascii_uppercase().as_str() {
            "" if has_query => Sort::Relevance,
            "" | "NEWEST" => Sort::Newest,
            "RELEVANCE" => Sort::Relevance,
            "PRICE_ASC" => Sort::PriceAsc,
            "PRICE_DESC" => Sort::PriceDesc,
            "NAME" => Sort::Name,
            "RATING" => Sort::Rating,
            other => {
                return Err(QueryError::InvalidArgument(format!(
                    "unknown sort {other:?}: use RELEVANCE, NEWEST, PRICE_ASC, PRICE_DESC, NAME or RATING"
                )))
            }
        };
        Ok(if sort == Sort::Relevance && !has_query {
            Sort::Newest
        } else {
            sort
        })
    }

    /// The name a cursor carries.
    pub fn tag(self) -> &'static str {
        match self {
            Sort::Relevance => "RELEVANCE",
            Sort::Newest => "NEWEST",
            Sort::PriceAsc => "PRICE_ASC",
            Sort::PriceDesc => "PRICE_DESC",
            Sort::Name => "NAME",
            Sort::Rating => "RATING",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Sort::Relevance => "ts_rank(p.search, q)::float8",
            Sort::Newest => "p.created_at",
            Sort::PriceAsc | Sort::PriceDesc => "p.price_minor",
            Sort::Name => "(p.name COLLATE \"C\")",
            Sort::Rating => "p.rating_avg",
        }
    }

    fn cast(self) -> &'static str {
        match self {
            Sort::Relevance | Sort::Rating => "::float8",
            Sort::Newest => "::timestamptz",
            Sort::PriceAsc | Sort::PriceDesc => "::bigint",
            Sort::Name => "::text COLLATE \"C\"",
        }
    }

    fn descending(self) -> bool {
        matches!(
            self,
            Sort::Relevance | Sort::Newest | Sort::PriceDesc | Sort::Rating
        )
    }
}

/// Where a page starts: after (or before) this row in this order (named by `sort`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: String,
    #[serde(rename = "k")]
    pub key: String,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a client's cursor for the order named `sort`. A cursor is opaque to clients,
    /// so anything that is not one this service made (too long, not base64 or JSON, another
    /// sort order, a key that is not of the sort key's type) is `InvalidArgument`, refused
    /// before any SQL runs. (A key that passes these checks but still does not cast, e.g. a
    /// forged timestamp, is a PostgreSQL data exception, also `InvalidArgument`.)
    pub fn decode(s: &str, sort: &str) -> Result<Self, QueryError> {
        let shown: String = s.chars().take(64).collect();
        let bad = || QueryError::InvalidArgument(format!("malformed cursor: {shown:?}"));
        if s.len() > MAX_CURSOR_LEN {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.sort != sort {
            return Err(QueryError::InvalidArgument(
                "the cursor belongs to another sort order".into(),
            ));
        }
        let key = cursor.key.as_str();
        let typed = match sort {
            "PRICE_ASC" | "PRICE_DESC" => key.parse::<i64>().is_ok(),
            "RELEVANCE" | "RATING" => key.parse::<f64>().is_ok(),
            // As PostgreSQL prints a timestamptz to sqlx (DateStyle ISO, TimeZone UTC), and
            // nothing else: PostgreSQL would also take 'yesterday' or 'epoch'.
            "NEWEST" | "ORDERS" => {
                chrono::DateTime::parse_from_str(key, "%Y-%m-%d %H:%M:%S%.f%#z").is_ok()
            }
            _ => true,
        };
        if !typed || key.chars().any(char::is_control) {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// A validated search request.
struct Search<'a> {
    r: &'a SearchProductsRequest,
    query: &'a str,
    sort: Sort,
    /// Paging backwards (`last`/`before`).
    backward: bool,
    size: u32,
    cursor: Option<Cursor>,
}

impl<'a> Search<'a> {
    fn parse(r: &'a SearchProductsRequest) -> Result<Self, QueryError> {
        let query = r.query.trim();
        if query.chars().count() > 200 {
            return Err(QueryError::InvalidArgument(
                "a search query has at most 200 characters".into(),
            ));
        }
        let sort = Sort::parse(&r.sort, !query.is_empty())?;
        if (r.first > 0 || !r.after.is_empty()) && (r.last > 0 || !r.before.is_empty()) {
            return Err(QueryError::InvalidArgument(
                "page with first/after or with last/before, not both".into(),
            ));
        }
        let backward = r.last > 0 || !r.before.is_empty();
        let size = if backward { r.last } else { r.first };
        if size > MAX_PAGE {
            return Err(QueryError::InvalidArgument(format!(
                "a page has at most {MAX_PAGE} products"
            )));
        }
        let size = if size == 0 { DEFAULT_PAGE } else { size };
        let cursor = match if backward { &r.before } else { &r.after } {
            c if c.is_empty() => None,
            c => Some(Cursor::decode(c, sort.tag())?),
        };
        if let (Some(min), Some(max)) = (r.min_price_minor, r.max_price_minor) {
            if min > max {
                return Err(QueryError::InvalidArgument(
                    "minPrice is above maxPrice".into(),
                ));
            }
        }
        Ok(Self {
            r,
            query,
            sort,
            backward,
            size,
            cursor,
        })
    }

    /// `FROM ... WHERE <filters>`, shared by the page and the count.
    fn push_from_where(&self, b: &mut QueryBuilder<'a, Postgres>) {
        b.push(" FROM products p");
        if !self.query.is_empty() {
            b.push(", websearch_to_tsquery('english', ")
                .push_bind(self.query)
                .push(") q");
        }
        b.push(" WHERE true");
        if !self.r.include_archived {
            b.push(" AND NOT p.archived");
        }
        if !self.query.is_empty() {
            b.push(" AND p.search @@ q");
        }
        if !self.r.category.is_empty() {
            b.push(" AND p.categories @> ARRAY[")
                .push_bind(self.r.category.as_str())
                .push("]");
        }
        if !self.r.brand.is_empty() {
            b.push(" AND p.brand = ").push_bind(self.r.brand.as_str());
        }
        if let Some(min) = self.r.min_price_minor {
            b.push(" AND p.price_minor >= ").push_bind(min);
        }
        if let Some(max) = self.r.max_price_minor {
            b.push(" AND p.price_minor <= ").push_bind(max);
        }
        if self.r.in_stock {
            b.push(" AND p.on_hand - p.reserved > 0");
        }
        if !self.r.attributes.is_empty() {
            let attrs: serde_json::Map<String, serde_json::Value> = self
                .r
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            b.push(" AND p.attributes @> ")
                .push_bind(serde_json::Value::Object(attrs))
                .push("::jsonb");
        }
    }
}

/// One page of products, with cursors, the total count and page info.
pub async fn search(
    pool: &PgPool,
    r: &SearchProductsRequest,
    product_json: &str,
) -> Result<Page, QueryError> {
    let s = Search::parse(r)?;
    let key = s.sort.key();
    // Backwards, the scan runs in the reverse order and the page is flipped afterwards.
    let desc = s.sort.descending() != s.backward;
    let (key_dir, id_dir) = if desc {
        ("DESC", if s.backward { "DESC" } else { "ASC" })
    } else {
        ("ASC", if s.backward { "DESC" } else { "ASC" })
    };

    let mut b = QueryBuilder::new("SELECT ");
    b.push(product_json)
        .push(", p.id, (")
        .push(key)
        .push(")::text");
    s.push_from_where(&mut b);
    if let Some(c) = &s.cursor {
        // Strictly beyond the cursor in scan order: the key moves on, or ties move on by id.
        let (key_cmp, id_cmp) = (
            if desc { "<" } else { ">" },
            if s.backward { "<" } else { ">" },
        );
        b.push(format!(" AND ({key} {key_cmp} "))
            .push_bind(c.key.clone())
            .push(s.sort.cast())
            .push(format!(" OR ({key} = "))
            .push_bind(c.key.clone())
            .push(s.sort.cast())
            .push(format!(" AND p.id {id_cmp} "))
            .push_bind(c.id)
            .push("))");
    }
    b.push(format!(" ORDER BY {key} {key_dir}, p.id {id_dir} LIMIT "))
        .push_bind(i64::from(s.size) + 1);
    crate::sql_statement("shop");
    let mut rows: Vec<(String, Uuid, String)> = b.build_query_as().fetch_all(pool).await?;

    let more = rows.len() > s.size as usize;
    rows.truncate(s.size as usize);
    if s.backward {
        rows.reverse();
    }

    let mut count = QueryBuilder::new("SELECT count(*)");
    s.push_from_where(&mut count);
    crate::sql_statement("shop");
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;

    let mut page = page_of(rows, s.sort.tag(), total);
    page.has_next_page = if s.backward { s.cursor.is_some() } else { more };
    page.has_previous_page = if s.backward { more } else { s.cursor.is_some() };
    Ok(page)
}

/// A page of `(document, id, sort key)` rows, each with its cursor in the order named `sort`
/// (page info is the caller's).
pub fn page_of(
    rows: impl IntoIterator<Item = (String, Uuid, String)>,
    sort: &str,
    total: i64,
) -> Page {
    let mut page = Page {
        total_count: total.max(0) as u64,
        ..Default::default()
    };
    for (json, id, key) in rows {
        page.json.push(json);
        page.cursors.push(
            Cursor {
                sort: sort.to_owned(),
                key,
                id,
            }
            .encode(),
        );
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_their_sort() {
        let c = Cursor {
            sort: Sort::PriceAsc.tag().into(),
            key: "1299".into(),
            id: Uuid::from_u128(7),
        };
        assert_eq!(Cursor::decode(&c.encode(), "PRICE_ASC").unwrap(), c);
        assert!(Cursor::decode(&c.encode(), "NAME").is_err());
        assert!(Cursor::decode("not a cursor", "NAME").is_err());
    }

    #[test]
    fn forged_cursors_are_invalid_arguments() {
        let forged = |sort: &str, key: &str| {
            Cursor {
                sort: sort.into(),
                key: key.into(),
                id: Uuid::from_u128(7),
            }
            .encode()
        };
        for (sort, key) in [
            ("PRICE_ASC", "cheap"),
            ("PRICE_DESC", "1.5"),
            ("RATING", "high"),
            ("RELEVANCE", ""),
            ("NAME", "a\u{0}b"),
            ("NEWEST", "yesterday"),
            ("ORDERS", "epoch"),
            ("ORDERS", "2026-13-01 10:54:07+00"),
        ] {
            assert!(
                matches!(
                    Cursor::decode(&forged(sort, key), sort),
                    Err(QueryError::InvalidArgument(_))
                ),
                "{sort} {key:?}"
            );
        }
        assert!(Cursor::decode(&"A".repeat(MAX_CURSOR_LEN + 1), "NAME").is_err());
        // Keys as PostgreSQL prints them pass.
        for (sort, key) in [
            ("PRICE_ASC", "-12"),
            ("RATING", "4.5"),
            ("RELEVANCE", "6.07927e-05"),
            ("RATING", "NaN"),
            ("NEWEST", "2026-12-01 10:54:07.123456+00"),
            ("ORDERS", "2026-12-01 10:54:07+00"),
            ("ORDERS", "2026-12-01 10:54:07.1+05:30"),
            ("NAME", "Café ☕"),
        ] {
            assert!(
                Cursor::decode(&forged(sort, key), sort).is_ok(),
                "{sort} {key:?}"
            );
        }
    }

    #[test]
    fn relevance_needs_a_query() {
        assert_eq!(Sort::parse("", true).unwrap(), Sort::Relevance);
        assert_eq!(Sort::parse("", false).unwrap(), Sort::Newest);
        assert_eq!(Sort::parse("relevance", false).unwrap(), Sort::Newest);
        assert_eq!(Sort::parse("price_desc", false).unwrap(), Sort::PriceDesc);
        assert!(Sort::parse("cheapest", false).is_err());
    }

    #[test]
    fn paging_both_ways_at_once_is_refused() {
        let r = SearchProductsRequest {
            first: 5,
            last: 5,
            ..Default::default()
        };
        assert!(Search::parse(&r).is_err());
        let r = SearchProductsRequest {
            first: MAX_PAGE + 1,
            ..Default::default()
        };
        assert!(Search::parse(&r).is_err());
    }
}
