# Parley: build once, run as an unprivileged user. `docker compose up` builds it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
RUN cargo build --release --locked --bin parley

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/parley parley \
    && mkdir -p /var/lib/parley/uploads && chown -R parley /var/lib/parley
COPY --from=build /src/target/release/parley /usr/local/bin/parley
USER parley
ENV PARLEY_ADDR=0.0.0.0:3000 PARLEY_DATA_DIR=/var/lib/parley LOG_FORMAT=json
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fs http://127.0.0.1:3000/health/ready || exit 1
STOPSIGNAL SIGTERM
CMD ["parley"]
