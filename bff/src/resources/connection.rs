//! Relay connections, one generic shape for every paged list (products, orders): a page of
//! documents with their cursors from a query service becomes `edges`, `pageInfo` and
//! `totalCount`.

use super::order::Order;
use super::product::Product;
use crate::error::BffError;
use async_graphql::{OutputType, SimpleObject};
/// Relay page info.
#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
#[graphql(concrete(name = "ProductEdge", params(Product)))]
#[graphql(concrete(name = "OrderEdge", params(Order)))]
pub struct Edge<T: OutputType> {
    pub cursor: String,
    pub node: T,
}

#[derive(SimpleObject)]
#[graphql(concrete(name = "ProductConnection", params(Product)))]
#[graphql(concrete(name = "OrderConnection", params(Order)))]
pub struct Connection<T: OutputType>
where
    Edge<T>: OutputType,
{
    pub edges: Vec<Edge<T>>,
    pub page_info: PageInfo,
    /// How many match, over all pages.
    pub total_count: i64,
}

impl<T: OutputType> Connection<T>
where
    Edge<T>: OutputType,
{
    /// The connection of a query service's page, each document turned into a node.
    pub fn of(
        page: proto::queries::Page,
        node: impl Fn(&str) -> Result<T, BffError>,
    ) -> Result<Self, BffError> {
        let edges = page
            .json
            .iter()
            .zip(page.cursors)
            .map(|(j, cursor)| {
                Ok(Edge {
                    cursor,
                    node: node(j)?,
                })
            })
            .collect::<Result<Vec<_>, BffError>>()?;
        Ok(Connection {
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                has_previous_page: page.has_previous_page,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: page.total_count as i64,
        })
    }
}
