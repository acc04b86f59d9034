# spamgate container image: build with
#   docker build -t spamgate .
# and run with a configuration of your own mounted over the example:
#   docker run -p 25:2525 -p 9425:9425 -v /etc/spamgate:/etc/spamgate:ro spamgate
# The process runs as an unprivileged user and listens on 2525 inside the
# container; publish it as port 25 on the host.

# ---- build stage -------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo fetch --locked \
    && rm -rf src
COPY src ./src
# --ignore-rust-version: mail-parser 1.0 declares rustc 1.98 but builds with 1.95.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --ignore-rust-version --bin spamgate \
    && install -D -m 0755 target/release/spamgate /out/spamgate

# ---- runtime stage -----------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10025 spamgate \
    && useradd --system --uid 10025 --gid spamgate --home-dir /nonexistent \
       --no-create-home --shell /usr/sbin/nologin spamgate
COPY --from=build /out/spamgate /usr/bin/spamgate
COPY packaging/container.yaml /etc/spamgate/spamgate.yaml
USER spamgate:spamgate
EXPOSE 2525 9425
# tini forwards SIGTERM (graceful drain) and SIGHUP (reload) and reaps.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/bin/spamgate"]
CMD ["run", "--config", "/etc/spamgate/spamgate.yaml"]
