# One static binary for the controller, `check`, `simulate` and the loadtest Job.
# Build: docker build -t greenlight:dev .
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that source edits reuse the cached dependency layer.
COPY Cargo.toml Cargo.lock ./
# (Cargo wants every target the manifest declares to exist, the bench included.)
RUN mkdir src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > benches/decide.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl \
 && rm -rf src
COPY src src
COPY benches benches
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/greenlight /greenlight

# distroless/static: no shell, no libc needed, CA certificates included, runs as non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /greenlight /usr/local/bin/greenlight
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/greenlight"]
