# Herald: build in the Rust image, run on slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin herald

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/herald --create-home herald
COPY --from=build /src/target/release/herald /usr/local/bin/herald
USER herald
WORKDIR /var/lib/herald
ENV HERALD_LISTEN=0.0.0.0:8080 HERALD_DATA_DIR=/var/lib/herald
EXPOSE 8080
ENTRYPOINT ["herald"]
CMD ["serve"]
