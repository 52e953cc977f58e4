//! Generated gRPC types for every service. One module per package; `FILE_DESCRIPTOR_SET` feeds
//! the reflection service so `grpcurl` works without local `.proto` files.

/// `commerce.cart.v1`: the cart's command and query services.
pub mod cart {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("commerce.cart.v1");
}

/// `commerce.commands.v1`: the generic command API of the other aggregates.
pub mod commands {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("commerce.commands.v1");
}

/// `commerce.user.v1`: accounts and authentication.
pub mod user {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("commerce.user.v1");
}

/// `commerce.payment.v1`: card tokenization.
pub mod payment {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("commerce.payment.v1");
}

/// `commerce.queries.v1`: catalogue, order and payment read models.
pub mod queries {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("commerce.queries.v1");
}

/// Encoded `FileDescriptorSet` of every compiled `.proto`, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
