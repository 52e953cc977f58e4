//! The PostgreSQL read models' plumbing, shared by the projectors that write them and the
//! query services that read them, so neither imports the other.
//!
//! Migrations (under `read-model/migrations`) are run by sqlx when a projector or a query
//! service starts; running them from several processes at once is safe.

/// A pool of at most `max` connections, waiting at most 5 s for one.
pub async fn connect_pg(url: &str, max: u32) -> anyhow::Result<sqlx::PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await?)
}

/// Where the read models are, as the projectors and query services take it.
#[derive(Debug, Clone, clap::Args)]
pub struct PgArgs {
    /// The read models' PostgreSQL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/commerce"
    )]
    pub database_url: String,
}

impl PgArgs {
    /// A pool of at most `max` connections to migrated read models.
    pub async fn connect_migrated(&self, max: u32) -> anyhow::Result<sqlx::PgPool> {
        let pool = connect_pg(&self.database_url, max).await?;
        migrate(&pool).await?;
        Ok(pool)
    }
}

/// Runs the read models' migrations (safe to call from several processes at once).
pub async fn migrate(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}

/// The PostgreSQL NOTIFY channel on which a projection announces `<stream_id>:<version>`
/// for every event it applied, when its batch commits.
pub fn notify_channel(projection: &str) -> String {
    format!("readmodel_{}", projection.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn channels_are_identifiers() {
        assert_eq!(
            super::notify_channel("checkout-saga"),
            "readmodel_checkout_saga"
        );
    }
}
