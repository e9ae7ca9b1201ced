# Herald: build in the Rust image, run on slim Debian.
#   docker build -t herald .
#   docker run -p 8080:8080 -v herald-data:/var/lib/herald herald
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, from the manifests alone, so that a change to
# Herald's own code does not rebuild them: every workspace member gets
# empty sources for this step.
COPY Cargo.toml Cargo.lock ./
COPY domain/Cargo.toml domain/
COPY projections/Cargo.toml projections/
COPY infra/Cargo.toml infra/
COPY api/Cargo.toml api/
COPY tests/Cargo.toml tests/
COPY bench/Cargo.toml bench/
RUN for crate in domain projections infra api; do mkdir -p $crate/src && touch $crate/src/lib.rs; done \
    && echo 'fn main() {}' > api/src/main.rs \
    && mkdir -p tests/support tests/it bench/src && touch tests/support/lib.rs \
    && echo 'fn main() {}' > tests/it/main.rs && echo 'fn main() {}' > bench/src/main.rs \
    && cargo build --release --locked -p api --bin herald \
    && rm -rf domain projections infra api tests bench
# Then Herald itself.
COPY . .
RUN touch domain/src/lib.rs projections/src/lib.rs infra/src/lib.rs api/src/lib.rs api/src/main.rs \
    && cargo build --release --locked -p api --bin herald

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/herald --create-home herald
COPY --from=build /src/target/release/herald /usr/local/bin/herald
USER herald
WORKDIR /var/lib/herald
# The SQLite database, the generated root token and secret key (when not
# given) live here: keep it on a volume.
VOLUME ["/var/lib/herald"]
ENV HERALD_LISTEN=0.0.0.0:8080 HERALD_DATA_DIR=/var/lib/herald
EXPOSE 8080
# `herald healthcheck` asks this node's /readyz (no shell or curl needed).
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 CMD ["herald", "healthcheck"]
ENTRYPOINT ["herald"]
CMD ["serve"]
