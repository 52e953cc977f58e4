//! Lag: while the cart projector is stopped, `commerce projections status` shows the cart
//! projection's lag growing (in events and seconds); once it is started again the lag
//! returns to 0, and the projector's `/metrics` shows the lag gauges.

use crate::cli_common::*;
use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn lag_grows_while_the_projector_is_paused_and_returns_to_zero() {
    let client = http();
    // Start from a caught-up projection.
    create_cart(&client).await;
    poll(
        "cart projection caught up",
        Duration::from_secs(60),
        || async {
            let (events, _, state) = projection_lag("cart").await;
            (events == 0 && state == "caught-up").then_some(())
        },
    )
    .await;

    stack(&["stop", "cart-projector"]);
    for _ in 0..3 {
        create_cart(&client).await;
    }
    let (first, _, state) = poll("lag of 3", Duration::from_secs(60), || async {
        let lag = projection_lag("cart").await;
        (lag.0 >= 3).then_some(lag)
    })
    .await;
    assert_eq!(state, "live", "behind, not caught up");
    for _ in 0..2 {
        create_cart(&client).await;
    }
    let (second, seconds, _) = poll("lag growing", Duration::from_secs(60), || async {
        let lag = projection_lag("cart").await;
        (lag.0 >= first + 2).then_some(lag)
    })
    .await;
    assert!(second > first);
    assert!(seconds > 0.0, "the oldest unapplied event has an age");
    // The table for people names the projection and its lag.
    let table = commerce(&["projections", "status", "cart"]).await;
    assert!(table.stdout.contains("commerce.cart.events") && table.stdout.contains("live"));

    stack(&["start", "cart-projector"]);
    poll("lag back to 0", Duration::from_secs(60), || async {
        let (events, seconds, state) = projection_lag("cart").await;
        (events == 0 && seconds == 0.0 && state == "caught-up").then_some(())
    })
    .await;

    // And as Prometheus gauges on the projector's admin port.
    let metrics_url = format!(
        "{}/metrics",
        env("CART_PROJECTOR_ADMIN_URL", "http://127.0.0.1:19204")
    );
    poll("lag gauges at 0", Duration::from_secs(60), || async {
        let text = client
            .get(&metrics_url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let gauges: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("projector_lag_events{"))
            .collect();
        (!gauges.is_empty() && gauges.iter().all(|l| l.ends_with(" 0"))).then_some(())
    })
    .await;
}
