//! Compiles every `.proto` under `proto/commerce` with protox (pure Rust) and generates tonic
//! clients and servers, plus a file descriptor set for gRPC reflection.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "commerce/cart/v1/cart.proto",
        "commerce/commands/v1/commands.proto",
        "commerce/user/v1/user.proto",
        "commerce/payment/v1/payment.proto",
        "commerce/queries/v1/queries.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
