# syntax=docker/dockerfile:1
# One static binary for everything the cluster runs: `greenlight controller` (the chart's
# Deployment), `greenlight loadtest` (test Jobs), `check` and `simulate`.
#
#   docker build -t registry.example.com/platform/greenlight:0.1.0 .
#
# The image is linux/amd64: a musl binary, fully static (no libc), on distroless/static,
# which brings CA certificates (probes and webhooks over HTTPS), /etc/passwd with the
# nonroot user and nothing else: no shell, no package manager.

FROM rust:1.95-bookworm AS build
# musl-tools provides musl-gcc, the C compiler `ring` (TLS), libgit2, libssh2 and OpenSSL
# (GitOps mode) are built with for the musl target; OpenSSL's build needs perl and make.
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_TERM_COLOR=never
WORKDIR /src

# Dependencies first, against placeholder sources, so that editing src/ reuses this layer.
# Cargo wants every target the manifest declares to exist, the benches included.
COPY Cargo.toml Cargo.lock ./
# The allocator's settings, built into the binary.
COPY .cargo .cargo
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for bench in decide controller; do echo 'fn main() {}' > "benches/$bench.rs"; done \
 && cargo build --release --locked --target x86_64-unknown-linux-musl --features static-openssl --bin greenlight \
 && rm -rf src benches

COPY src src
COPY benches benches
# The real sources must look newer than the placeholders' build outputs.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl --features static-openssl --bin greenlight \
 && cp target/x86_64-unknown-linux-musl/release/greenlight /greenlight \
 && /greenlight --version

# distroless/static: CA certificates, tzdata and the nonroot user (65532); no libc needed.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="greenlight" \
      org.opencontainers.image.description="Promotes releases through environments only when their gates pass" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /greenlight /greenlight
USER 65532:65532
ENTRYPOINT ["/greenlight"]
CMD ["controller"]
