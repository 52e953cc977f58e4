//! `Queries`: products (search in [`crate::search`]), orders (with lines, filtered and paged,
//! and their timelines), payments and notifications from their read models, as JSON
//! documents built by PostgreSQL. The catalogue is open to any credential (archived products
//! to the back office only); an order, its timeline, payments and notifications to its
//! customer, admins and internal services.

use crate::search::{page_of, Cursor};
use crate::watch::VersionWatch;
use crate::QueryError;
use platform::internal_auth::Actor;
use proto::queries::queries_server::{Queries, QueriesServer};
use proto::queries::{
    ById, ByIds, ByNames, Document, Documents, ListOrdersRequest, NotificationsRequest, Page,
    SearchProductsRequest,
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

pub struct ShopQueryService {
    pool: PgPool,
    watch: VersionWatch,
}

impl ShopQueryService {
    pub fn new(pool: PgPool, watch: VersionWatch) -> QueriesServer<Self> {
        QueriesServer::new(Self { pool, watch })
    }
}

async fn order_version(pool: &PgPool, id: Uuid) -> Result<u64, sqlx::Error> {
    let v: Option<i64> = sqlx::query_scalar("SELECT version FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(v.unwrap_or(0) as u64)
}

fn uuid(s: &str) -> Result<Uuid, QueryError> {
    Uuid::parse_str(s.trim())
        .map_err(|_| QueryError::InvalidArgument(format!("malformed id: {s:?}")))
}

fn optional_uuid(s: &str) -> Result<Option<Uuid>, QueryError> {
    if s.trim().is_empty() {
        Ok(None)
    } else {
        uuid(s).map(Some)
    }
}

fn optional_time(s: &str, what: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, QueryError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| Some(t.with_timezone(&chrono::Utc)))
        .map_err(|_| QueryError::InvalidArgument(format!("{what} is not an RFC 3339 time: {s:?}")))
}

/// The statuses an order can be in, as the read model stores them.
const ORDER_STATUSES: [&str; 7] = [
    "placed",
    "stock_reserved",
    "payment_authorized",
    "confirmed",
    "shipped",
    "delivered",
    "cancelled",
];

/// Orders newest first (ties by id), filtered, one keyset page after the cursor.
async fn list_orders(pool: &PgPool, r: &ListOrdersRequest) -> Result<Page, QueryError> {
    let limit = r.limit.clamp(1, 100);
    let customer = optional_uuid(&r.customer_id)?;
    let status = match r.status.trim().to_ascii_lowercase() {
        s if s.is_empty() => None,
        s if ORDER_STATUSES.contains(&s.as_str()) => Some(s),
        s => {
            return Err(QueryError::InvalidArgument(format!(
                "unknown order status {s:?}"
            )))
        }
    };
    let from = optional_time(&r.placed_from, "placedFrom")?;
    let to = optional_time(&r.placed_to, "placedTo")?;
    let after = match r.after.trim() {
        "" => None,
        c => Some(Cursor::decode(c, "ORDERS")?),
    };
    let filter = "($1::uuid IS NULL OR o.customer_id = $1) AND ($2::text IS NULL OR o.status = $2)
         AND ($3::timestamptz IS NULL OR o.placed_at >= $3)
         AND ($4::timestamptz IS NULL OR o.placed_at < $4)";
    crate::sql_statement("shop");
    let rows: Vec<(String, Uuid, String)> = sqlx::query_as(&format!(
        "SELECT {ORDER_JSON}, o.id, o.placed_at::text FROM orders o WHERE {filter}
           AND ($5::timestamptz IS NULL OR o.placed_at < $5::timestamptz
                OR (o.placed_at = $5::timestamptz AND o.id > $6))
         ORDER BY o.placed_at DESC, o.id LIMIT $7"
    ))
    .bind(customer)
    .bind(&status)
    .bind(from)
    .bind(to)
    .bind(after.as_ref().map(|c| c.key.clone()))
    .bind(after.as_ref().map(|c| c.id))
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    crate::sql_statement("shop");
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM orders o WHERE {filter}"))
        .bind(customer)
        .bind(&status)
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?;
    let more = rows.len() > limit as usize;
    let mut page = page_of(rows.into_iter().take(limit as usize), "ORDERS", total);
    page.has_next_page = more;
    page.has_previous_page = after.is_some();
    Ok(page)
}

/// The customer of an order (`NotFound` when there is no such order).
async fn order_customer(pool: &PgPool, id: Uuid) -> Result<String, QueryError> {
    crate::sql_statement("shop");
    let c: Option<Option<Uuid>> =
        sqlx::query_scalar("SELECT customer_id FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    match c {
        Some(c) => Ok(c.map(|c| c.to_string()).unwrap_or_default()),
        None => Err(QueryError::NotFound("order not found".into())),
    }
}

/// May the actor see the order `id` and what hangs off it? Admins and services without a
/// lookup.
async fn may_see_order(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<(), QueryError> {
    if actor.is_admin() || actor.is_any_service() {
        return Ok(());
    }
    let owner = order_customer(pool, id).await?;
    crate::require_owner(actor, &owner)
}

/// Parses a batch of ids; a batch is bounded.
fn uuids(ids: &[String]) -> Result<Vec<Uuid>, QueryError> {
    if ids.len() > 1000 {
        return Err(QueryError::InvalidArgument(
            "at most 1000 ids at once".into(),
        ));
    }
    ids.iter().map(|s| uuid(s)).collect()
}

/// Live stock of products (`$1`: ids).
pub const STOCK_BY_ID: &str =
    "SELECT json_build_object('id', id, 'on_hand', on_hand, 'reserved', reserved,
                     'available', on_hand - reserved)::text FROM products WHERE id = ANY($1)";

/// Ratings of products (`$1`: ids).
pub const RATINGS_BY_ID: &str = "SELECT json_build_object('id', id, 'average', rating_avg,
                     'count', rating_count)::text FROM products WHERE id = ANY($1)";

/// The ten newest reviews of each product (`$1`: ids), each with the reviewer's display name
/// and no ids: the first word of their name and the initial of the last ("Ann B."), taken from
/// the one place the read side keeps names (`notification_recipients`, blanked when the
/// account is deleted), or "Verified buyer" when there is none (erased, or not yet projected).
pub const REVIEWS_BY_ID: &str =
    "SELECT json_build_object('product_id', product_id, 'reviewer_name', reviewer_name,
                     'rating', rating, 'title', title, 'body', body,
                     'created_at', created_at)::text
                 FROM (SELECT r.*,
                              CASE WHEN btrim(coalesce(u.name, '')) = '' THEN 'Verified buyer'
                                   WHEN strpos(btrim(u.name), ' ') = 0 THEN btrim(u.name)
                                   ELSE split_part(btrim(u.name), ' ', 1) || ' ' ||
                                        left(regexp_replace(btrim(u.name), '^.* ', ''), 1) || '.'
                              END AS reviewer_name,
                              row_number() OVER (PARTITION BY product_id
                                                 ORDER BY created_at DESC, r.customer_id) AS n
                       FROM reviews r
                       LEFT JOIN notification_recipients u ON u.customer_id = r.customer_id
                       WHERE product_id = ANY($1)) newest
                 WHERE n <= 10 ORDER BY product_id, n";

/// Brands and how many products each sells (`$1`: names).
pub const BRANDS_BY_NAME: &str =
    "SELECT json_build_object('name', brand, 'product_count', count(*))::text
     FROM products WHERE brand = ANY($1) AND NOT archived GROUP BY brand";

/// Products by id (`$1`: ids).
pub fn products_by_id() -> String {
    format!("SELECT {PRODUCT_JSON} FROM products WHERE id = ANY($1)")
}

/// Runs one statement returning JSON documents for a batch of ids (counted in
/// `query_sql_statements_total`).
pub async fn by_ids(pool: &PgPool, sql: &str, ids: Vec<Uuid>) -> Result<Documents, QueryError> {
    crate::sql_statement("shop");
    let json: Vec<String> = sqlx::query_scalar(sql).bind(ids).fetch_all(pool).await?;
    Ok(Documents { json })
}

/// A product row as the JSON document the BFF reads.
pub const PRODUCT_JSON: &str = "json_build_object(
    'id', id, 'name', name, 'description', description, 'categories', categories,
    'attributes', attributes,
    'price', json_build_object('amount_minor', price_minor, 'currency', currency),
    'on_hand', on_hand, 'reserved', reserved, 'available', on_hand - reserved,
    'archived', archived, 'version', version, 'brand', brand,
    'created_at', created_at)::text";

const ORDER_JSON: &str = "json_build_object(
    'id', o.id, 'customer_id', o.customer_id, 'cart_id', o.cart_id, 'status', o.status,
    'total', json_build_object('amount_minor', o.total_minor, 'currency', o.currency),
    'refunded_minor', o.refunded_minor, 'payment_id', o.payment_id, 'carrier', o.carrier,
    'tracking_number', o.tracking_number, 'cancel_reason', o.cancel_reason,
    'version', o.version, 'placed_at', o.placed_at, 'updated_at', o.updated_at,
    'lines', COALESCE((SELECT json_agg(json_build_object('product_id', l.product_id,
        'quantity', l.quantity, 'unit_price_minor', l.unit_price_minor) ORDER BY l.position)
        FROM order_lines l WHERE l.order_id = o.id), '[]'::json))::text";

const PAYMENT_JSON: &str = "json_build_object(
    'id', id, 'order_id', order_id, 'status', status,
    'amount', json_build_object('amount_minor', amount_minor, 'currency', currency),
    'refunded_minor', refunded_minor, 'card_brand', card_brand, 'card_last4', card_last4,
    'decline_reason', decline_reason, 'captures', captures, 'version', version)::text";

async fn timed<T>(
    method: &'static str,
    f: impl std::future::Future<Output = Result<T, QueryError>>,
) -> Result<Response<T>, Status> {
    let started = std::time::Instant::now();
    let r = f.await;
    crate::record("shop", method, started, r.as_ref().err());
    Ok(Response::new(r?))
}

#[tonic::async_trait]
impl Queries for ShopQueryService {
    async fn get_products(&self, request: Request<ByIds>) -> Result<Response<Documents>, Status> {
        timed("GetProducts", async {
            let ids = uuids(&request.get_ref().ids)?;
            by_ids(&self.pool, &products_by_id(), ids).await
        })
        .await
    }

    async fn search_products(
        &self,
        request: Request<SearchProductsRequest>,
    ) -> Result<Response<Page>, Status> {
        let actor = crate::actor(&request)?;
        timed("SearchProducts", async {
            if request.get_ref().include_archived {
                crate::require_back_office(&actor)?;
            }
            crate::search::search(&self.pool, request.get_ref(), PRODUCT_JSON).await
        })
        .await
    }

    async fn get_stock(&self, request: Request<ByIds>) -> Result<Response<Documents>, Status> {
        timed("GetStock", async {
            let ids = uuids(&request.get_ref().ids)?;
            by_ids(&self.pool, STOCK_BY_ID, ids).await
        })
        .await
    }

    async fn get_ratings(&self, request: Request<ByIds>) -> Result<Response<Documents>, Status> {
        timed("GetRatings", async {
            let ids = uuids(&request.get_ref().ids)?;
            by_ids(&self.pool, RATINGS_BY_ID, ids).await
        })
        .await
    }

    async fn get_reviews(&self, request: Request<ByIds>) -> Result<Response<Documents>, Status> {
        timed("GetReviews", async {
            let ids = uuids(&request.get_ref().ids)?;
            by_ids(&self.pool, REVIEWS_BY_ID, ids).await
        })
        .await
    }

    async fn get_brands(&self, request: Request<ByNames>) -> Result<Response<Documents>, Status> {
        timed("GetBrands", async {
            let names = &request.get_ref().names;
            if names.len() > 1000 {
                return Err(QueryError::InvalidArgument(
                    "at most 1000 brands at once".into(),
                ));
            }
            crate::sql_statement("shop");
            let json: Vec<String> = sqlx::query_scalar(BRANDS_BY_NAME)
                .bind(names)
                .fetch_all(&self.pool)
                .await?;
            Ok(Documents { json })
        })
        .await
    }

    async fn get_order(&self, request: Request<ById>) -> Result<Response<Document>, Status> {
        let actor = crate::actor(&request)?;
        timed("GetOrder", async {
            let id = uuid(&request.get_ref().id)?;
            let at_least = request.get_ref().at_least_version;
            let mut reached = true;
            if at_least > 0 {
                let pool = self.pool.clone();
                reached = self
                    .watch
                    .wait_for("order", &id.to_string(), at_least, || {
                        order_version(&pool, id)
                    })
                    .await?;
            }
            crate::sql_statement("shop");
            let json: Option<String> = sqlx::query_scalar(&format!(
                "SELECT {ORDER_JSON} FROM orders o WHERE o.id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            // Waited for a version and not projected at all yet: NOT_FOUND with
            // `at_least_version` means "not there yet" (the BFF answers STALE).
            let json = json.ok_or_else(|| {
                QueryError::NotFound(if reached {
                    "order not found".into()
                } else {
                    format!("order not projected at version {at_least} yet")
                })
            })?;
            if !(actor.is_admin() || actor.is_any_service()) {
                let owner: serde_json::Value = serde_json::from_str(&json)
                    .map_err(|_| QueryError::NotFound("order not found".into()))?;
                crate::require_owner(&actor, owner["customer_id"].as_str().unwrap_or_default())?;
            }
            Ok(Document { json })
        })
        .await
    }

    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<Page>, Status> {
        let actor = crate::actor(&request)?;
        timed("ListOrders", async {
            // Every customer's orders: the back office; one customer's: them too.
            match request.get_ref().customer_id.trim() {
                "" => crate::require_back_office(&actor)?,
                c => crate::require_owner(&actor, c)?,
            }
            list_orders(&self.pool, request.get_ref()).await
        })
        .await
    }

    async fn get_order_timeline(
        &self,
        request: Request<ById>,
    ) -> Result<Response<Documents>, Status> {
        let actor = crate::actor(&request)?;
        timed("GetOrderTimeline", async {
            let id = uuid(&request.get_ref().id)?;
            may_see_order(&self.pool, &actor, id).await?;
            crate::sql_statement("shop");
            let json: Vec<String> = sqlx::query_scalar(
                "SELECT json_build_object('version', version, 'event_type', event_type,
                     'summary', summary, 'actor', actor, 'occurred_at', occurred_at)::text
                 FROM order_timeline WHERE order_id = $1 ORDER BY version",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            Ok(Documents { json })
        })
        .await
    }

    async fn list_notifications(
        &self,
        request: Request<NotificationsRequest>,
    ) -> Result<Response<Documents>, Status> {
        let actor = crate::actor(&request)?;
        timed("ListNotifications", async {
            let r = request.get_ref();
            let order = optional_uuid(&r.order_id)?;
            let customer = optional_uuid(&r.customer_id)?;
            match (order, customer) {
                (None, None) => crate::require_back_office(&actor)?,
                // Filtered by the customer: theirs only, whatever the order.
                (_, Some(c)) => crate::require_owner(&actor, &c.to_string())?,
                (Some(o), None) => may_see_order(&self.pool, &actor, o).await?,
            }
            let limit = i64::from(r.limit.clamp(1, 500));
            crate::sql_statement("shop");
            let json: Vec<String> = sqlx::query_scalar(
                "SELECT json_build_object('event_id', event_id, 'order_id', order_id,
                     'customer_id', customer_id, 'kind', kind, 'channel', channel,
                     'recipient', recipient, 'subject', subject, 'body', body,
                     'occurred_at', occurred_at, 'sent_at', sent_at)::text
                 FROM notifications
                 WHERE ($1::uuid IS NULL OR order_id = $1) AND ($2::uuid IS NULL OR customer_id = $2)
                 ORDER BY occurred_at DESC, event_id LIMIT $3",
            )
            .bind(order)
            .bind(customer)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(Documents { json })
        })
        .await
    }

    async fn get_payments_of_order(
        &self,
        request: Request<ById>,
    ) -> Result<Response<Documents>, Status> {
        let actor = crate::actor(&request)?;
        timed("GetPaymentsOfOrder", async {
            let id = uuid(&request.get_ref().id)?;
            may_see_order(&self.pool, &actor, id).await?;
            crate::sql_statement("shop");
            let json: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT {PAYMENT_JSON} FROM payments WHERE order_id = $1 ORDER BY created_at DESC"
            ))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            Ok(Documents { json })
        })
        .await
    }
}
