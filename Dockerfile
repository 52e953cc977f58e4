# syntax=docker/dockerfile:1
# One image for every service of the commerce backend (used by docker-compose.yml, which picks
# the binary with `command:`). Two stages:
#   builder  rust:1.95-bookworm builds the whole workspace in release mode. Nothing beyond the
#            image is needed: protobuf is compiled with protox (no protoc), and rdkafka's default
#            static librdkafka build needs only gcc, make and zlib, which the image already has.
#   runtime  debian:bookworm-slim with CA certificates and the five service binaries, run as an
#            unprivileged user. No default CMD: compose sets the command per service.

FROM rust:1.95-bookworm AS builder
WORKDIR /app
# sqlx query macros (if any) check against the .sqlx/ metadata, never a live database.
ENV SQLX_OFFLINE=true
COPY . .
# Cache the crate registry and git checkouts between builds (BuildKit); target/ stays in the
# layer so the runtime stage can copy from it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --release --locked --workspace

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin commerce
COPY --from=builder /app/target/release/command-service \
                    /app/target/release/relay \
                    /app/target/release/projector \
                    /app/target/release/query-service \
                    /app/target/release/bff \
                    /app/target/release/commerce \
                    /usr/local/bin/
USER commerce
