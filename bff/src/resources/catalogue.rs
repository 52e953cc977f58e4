//! The catalogue resource: `product(id)` and `products(query, filter, sort, first/after,
//! last/before)` as a Relay connection, with the page's details prefetched in one batch per
//! kind, and customers' `reviewProduct`. The admin's mutations are in `catalogue_admin`.

use super::common::{exec, Attribute, MutationResult};
use super::connection::{Connection, Edge};
use super::product::{loader, BrandOf, Product, ProductDoc, RatingOf, ReviewsOf, StockOf};
use crate::context::{backends, caller, grpc, parse_doc};
use crate::error::{gql, BffError};
use async_graphql::{Context, Enum, InputObject, Object, Result, ID};
use domain::product::{ProductCommand, Rating};
use domain::values::{OrderId, ProductId, ReviewBody, ReviewTitle};
use proto::queries::{ByIds, SearchProductsRequest};

#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum ProductSort {
    /// Best match first (needs a query; without one, newest first).
    Relevance,
    Newest,
    PriceAsc,
    PriceDesc,
    Name,
    /// Highest average rating first.
    Rating,
}

impl ProductSort {
    fn wire(self) -> &'static str {
        match self {
            ProductSort::Relevance => "RELEVANCE",
            ProductSort::Newest => "NEWEST",
            ProductSort::PriceAsc => "PRICE_ASC",
            ProductSort::PriceDesc => "PRICE_DESC",
            ProductSort::Name => "NAME",
            ProductSort::Rating => "RATING",
        }
    }
}

#[derive(InputObject, Default)]
pub struct ProductFilter {
    pub category: Option<String>,
    pub brand: Option<String>,
    /// Inclusive, in minor units.
    pub min_price_minor: Option<i64>,
    pub max_price_minor: Option<i64>,
    /// Only products with units available now.
    #[graphql(default)]
    pub in_stock: bool,
    /// Every attribute given must match.
    #[graphql(default)]
    pub attributes: Vec<Attribute>,
}

pub type ProductConnection = Connection<Product>;

fn page_size(n: Option<i32>) -> Result<u32, BffError> {
    match n {
        None => Ok(0),
        Some(n) if (1..=100).contains(&n) => Ok(n as u32),
        Some(_) => Err(BffError::InvalidArgument(
            "first and last are from 1 to 100".into(),
        )),
    }
}

/// Loads the details the query asks for, for the whole page at once: one batch per kind,
/// however the resolvers of the page's products are scheduled. Their `load_one`s then hit
/// the request's cache.
async fn prefetch(ctx: &Context<'_>, edges: &[Edge<Product>]) -> Result<(), BffError> {
    let node = ctx.look_ahead().field("edges").field("node");
    let loader = loader(ctx)?;
    let ids = || edges.iter().map(|e| e.node.id.to_string());
    let stock = async {
        if node.field("stock").exists() {
            loader.load_many(ids().map(StockOf)).await?;
        }
        Ok::<_, BffError>(())
    };
    let rating = async {
        if node.field("rating").exists() {
            loader.load_many(ids().map(RatingOf)).await?;
        }
        Ok(())
    };
    let brand = async {
        if node.field("brand").exists() {
            let names: std::collections::BTreeSet<String> = edges
                .iter()
                .filter_map(|e| e.node.brand_name.clone())
                .collect();
            loader.load_many(names.into_iter().map(BrandOf)).await?;
        }
        Ok(())
    };
    let reviews = async {
        if node.field("reviews").exists() {
            loader.load_many(ids().map(ReviewsOf)).await?;
        }
        Ok(())
    };
    futures::try_join!(stock, rating, brand, reviews)?;
    Ok(())
}

#[derive(Default)]
pub struct CatalogueQuery;

#[Object]
impl CatalogueQuery {
    /// A product of the catalogue.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Product> {
        gql(async move {
            let id = ProductId::parse(&id)?;
            let docs = backends(ctx)
                .shop
                .clone()
                .get_products(grpc(
                    ctx,
                    ByIds {
                        ids: vec![id.to_string()],
                    },
                ))
                .await?
                .into_inner();
            let doc = docs
                .json
                .first()
                .ok_or_else(|| BffError::NotFound("product not found".into()))?;
            Ok(parse_doc::<ProductDoc>(doc)?.into())
        }
        .await)
    }

    /// Search and browse the catalogue: full text (`query`, web-search syntax), filters, a
    /// sort order, and Relay cursor pagination (`first`/`after` or `last`/`before`).
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "(first.or(last).unwrap_or(20).clamp(1, 100) as usize / 10 + 1) * child_complexity"
    )]
    async fn products(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        filter: Option<ProductFilter>,
        sort: Option<ProductSort>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(
            default = false,
            desc = "Admins only: archived products too (`archived` tells them apart)."
        )]
        include_archived: bool,
    ) -> Result<ProductConnection> {
        gql(async move {
            if include_archived {
                caller(ctx).admin()?;
            }
            let f = filter.unwrap_or_default();
            let request = SearchProductsRequest {
                query: query.unwrap_or_default(),
                category: f.category.unwrap_or_default(),
                brand: f.brand.unwrap_or_default(),
                min_price_minor: f.min_price_minor,
                max_price_minor: f.max_price_minor,
                in_stock: f.in_stock,
                attributes: f.attributes.into_iter().map(|a| (a.key, a.value)).collect(),
                sort: sort.map(|s| s.wire().to_owned()).unwrap_or_default(),
                first: page_size(first)?,
                after: after.unwrap_or_default(),
                last: page_size(last)?,
                before: before.unwrap_or_default(),
                include_archived,
            };
            let page = backends(ctx)
                .shop
                .clone()
                .search_products(grpc(ctx, request))
                .await?
                .into_inner();
            let connection = Connection::of(page, |j| Ok(parse_doc::<ProductDoc>(j)?.into()))?;
            prefetch(ctx, &connection.edges).await?;
            Ok(connection)
        }
        .await)
    }
}

/// A customer's review of a product they received.
#[derive(Default)]
pub struct ReviewMutation;

#[Object]
impl ReviewMutation {
    /// Reviews a product the signed-in customer received in `orderId` (delivered): one
    /// review per customer and product, 1 to 5 stars.
    #[allow(clippy::too_many_arguments)]
    async fn review_product(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        order_id: ID,
        rating: i32,
        #[graphql(default)] title: String,
        #[graphql(default)] body: String,
        idempotency_key: Option<String>,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).user()?;
            let product = ProductId::parse(&product_id)?;
            let cmd = review(&order_id, rating, &title, &body)?;
            exec(
                ctx,
                &backends(ctx).products,
                product.to_string(),
                &cmd,
                idempotency_key,
            )
            .await
        }
        .await)
    }
}

/// The review command, its every field parsed by the domain's types.
fn review(
    order_id: &str,
    rating: i32,
    title: &str,
    body: &str,
) -> Result<ProductCommand, BffError> {
    Ok(ProductCommand::Review {
        order_id: OrderId::parse(order_id)?,
        rating: Rating::new(i64::from(rating))
            .map_err(|e| BffError::InvalidArgument(e.to_string()))?,
        title: ReviewTitle::parse(title)?,
        body: ReviewBody::parse(body)?,
        purchase: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn review_serializes_as_the_hand_written_command_did() {
        let order = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let cmd = review(order, 4, "Good", "Works well").unwrap();
        let old = json!({
            "type": "review", "order_id": order, "rating": 4,
            "title": "Good", "body": "Works well",
        });
        assert_eq!(serde_json::to_value(&cmd).unwrap(), old);
    }

    #[test]
    fn a_rating_out_of_range_is_invalid_input() {
        let order = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        assert!(matches!(
            review(order, 6, "", ""),
            Err(BffError::InvalidArgument(_))
        ));
    }
}
