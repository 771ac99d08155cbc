//! The `greenlight` command line: dispatch only; the work lives in the library.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// See `tikv-jemallocator` in Cargo.toml.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Greenlight promotes releases through environments only when their gates pass.
#[derive(Parser)]
#[command(name = "greenlight", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the kubeconfig (or the in-cluster
    /// config): watch Pipelines, Releases, Approvals, target Deployments and Jobs, and act
    /// on the engine's decisions.
    Controller(ControllerArgs),
    /// Print the CustomResourceDefinitions as YAML (the content of crds/).
    Crds,
    /// Validate Pipelines, Releases and Approvals offline: schema, CEL rules, upstream
    /// graph, cron, time zones, durations, Job templates and references between objects.
    Check {
        /// Files or directories (searched recursively for .yaml, .yml and .json); `-` reads
        /// standard input.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
    /// Run the real engine against an in-memory cluster on a virtual clock and print the
    /// timeline: when each release reaches each environment, what blocks it, every
    /// deploy, verification, rollback and promotion.
    Simulate {
        /// Files or directories holding one Pipeline and its Releases (and Approvals).
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// How long to simulate, such as 7d, 36h or 90m.
        #[arg(long, default_value = "7d", value_parser = parse_span)]
        until: std::time::Duration,
        /// Virtual start time (RFC 3339). Default: now, to the minute.
        #[arg(long)]
        start: Option<jiff::Timestamp>,
        /// Make a release fail: VERSION@ENV[:how], how = health (default), rollout, test,
        /// metric or pre-deploy. Repeatable.
        #[arg(long = "fail")]
        failures: Vec<greenlight::sim::Failure>,
        /// Add an approval: RELEASE@ENV:user (in every group the rules name). Repeatable.
        #[arg(long = "approve", value_parser = greenlight::sim::parse_approval)]
        approvals: Vec<(String, String, String)>,
        /// Which Pipeline, when the files hold several.
        #[arg(long)]
        pipeline: Option<String>,
        /// text (a timeline for people) or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
    /// Open-loop HTTP load or soak test for a Pipeline's test Job: send --rps requests per
    /// second for --duration, judge error rate and latency percentiles against the
    /// thresholds. Exit 0 passed, 1 a threshold violated, 2 usage error.
    Loadtest(greenlight::loadtest::Args),
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Elect a leader with a coordination.k8s.io Lease, so that several replicas can run
    /// and only one acts.
    #[arg(long)]
    leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "greenlight-controller")]
    lease_name: String,
    /// Namespace of the Lease. Default: $POD_NAMESPACE, else the kubeconfig's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity in the Lease and in Events. Default: $POD_NAME, else the
    /// host name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Watch and act in this namespace only (Pipelines, Releases, Approvals, target
    /// Deployments and Jobs must all live in it). Default: the whole cluster.
    #[arg(long)]
    namespace: Option<String>,
    /// Act only on the Pipelines matching this label selector (`kubectl get -l` syntax,
    /// such as `greenlight.dev/shard=a`); their Releases and Approvals follow them. Run one
    /// instance per shard, each with its own --lease-name. Default: every Pipeline.
    #[arg(long)]
    selector: Option<greenlight::controller::selector::LabelSelector>,
    /// How many Pipelines are reconciled at once (each Pipeline one at a time). Bounds
    /// the memory of a reconcile wave, such as the first one after start-up.
    #[arg(long, default_value_t = greenlight::controller::run::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Where the repositories of GitOps environments (`target.git`) are cached: a
    /// writable directory (the chart mounts an emptyDir).
    #[arg(
        long,
        env = "GREENLIGHT_GIT_CACHE",
        default_value = "/tmp/greenlight-git"
    )]
    git_cache: std::path::PathBuf,
    /// How often each GitOps repository (and the Argo CD or Flux object applying it) is
    /// read; a commit is read back at once.
    #[arg(long, default_value = "15s", value_parser = parse_span)]
    git_poll: std::time::Duration,
    /// text for people, json for clusters. The level comes from RUST_LOG (default info).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// `7d`, or any duration `greenlight check` accepts (`36h`, `90m`).
fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    if let Some(days) = text.strip_suffix('d').and_then(|d| d.parse::<u64>().ok()) {
        return Ok(std::time::Duration::from_secs(days * 86_400));
    }
    greenlight::validation::parse_duration(text)
}

fn main() -> ExitCode {
    // Installed as `kubectl-greenlight`, the binary is the kubectl plugin.
    if greenlight::plugin::invoked_as_plugin(std::env::args_os().next().as_deref()) {
        return greenlight::plugin::main(std::env::args_os());
    }
    match Cli::parse().command {
        Command::Controller(args) => controller(args),
        Command::Loadtest(args) => loadtest(args),
        Command::Crds => {
            print!("{}", greenlight::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Check { files } => {
            let report = greenlight::check::check_paths(&files);
            print!("{}", report.render());
            if report.errors() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Simulate {
            files,
            until,
            start,
            failures,
            approvals,
            pipeline,
            output,
        } => {
            let start = start.unwrap_or_else(|| {
                let now = jiff::Timestamp::now().as_second();
                jiff::Timestamp::from_second(now - now % 60).expect("now is a valid time")
            });
            let request = greenlight::sim::Request {
                files,
                pipeline,
                start,
                failures: failures.clone(),
                approvals,
            };
            let options = greenlight::sim::Options {
                failures,
                ..Default::default()
            };
            let mut loaded = match greenlight::sim::load(&request, options) {
                Ok(loaded) => loaded,
                Err(message) => {
                    eprintln!("{message}");
                    return ExitCode::FAILURE;
                }
            };
            loaded.simulation.run_for(until, &mut |_| {});
            if output == "json" {
                let json = greenlight::sim::timeline::json(&loaded.simulation, start);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).expect("the timeline serializes")
                );
            } else {
                print!(
                    "{}",
                    greenlight::sim::timeline::text(
                        &loaded.simulation,
                        &loaded.title,
                        start,
                        &loaded.last_environment
                    )
                );
            }
            ExitCode::SUCCESS
        }
    }
}

fn loadtest(args: greenlight::loadtest::Args) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("could not start the async runtime: {error}");
            return ExitCode::from(greenlight::loadtest::EXIT_USAGE);
        }
    };
    let interrupt = greenlight::controller::logging::termination();
    ExitCode::from(runtime.block_on(greenlight::loadtest::cli(args, interrupt)))
}

fn controller(args: ControllerArgs) -> ExitCode {
    greenlight::controller::logging::init(args.log_format == "json");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let client = match kube::Client::try_default().await {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "no kubeconfig or in-cluster config");
                return ExitCode::FAILURE;
            }
        };
        let identity = args
            .identity
            .unwrap_or_else(greenlight::controller::logging::host_name);
        let leader_election = args.leader_elect.then(|| {
            let namespace = args
                .lease_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned());
            greenlight::controller::leader::LeaseConfig::new(
                &namespace,
                &args.lease_name,
                &identity,
            )
        });
        let options = greenlight::controller::run::Options {
            namespace: args.namespace,
            selector: args.selector,
            metrics_addr: args.metrics_addr,
            leader_election,
            instance: identity,
            concurrency: args.concurrency,
            git: greenlight::controller::repos::GitOptions {
                cache: args.git_cache,
                poll: args.git_poll,
            },
            rediscover: greenlight::controller::discovery::REDISCOVER,
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            greenlight::controller::logging::termination().await;
            tracing::info!("shutting down: finishing reconciles and handing the Lease over");
            let _ = stop.send(true);
        });
        match greenlight::controller::run::run(client, options, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "the controller stopped");
                ExitCode::FAILURE
            }
        }
    })
}
