//! The kubectl plugin: the `greenlight` binary run under the file name
//! `kubectl-greenlight` (a symlink or copy on `$PATH`), so `kubectl greenlight status`,
//! `approve`, `reject`, `promote`, `retry` and `rollback` work. Each decision becomes an
//! `Approval` carrying the caller's identity as the API server reports it.

mod cluster;
mod decide;
mod error;
#[cfg(test)]
mod fixtures;
mod identity;
mod names;
mod overrides;
mod status;

use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

pub use cluster::{ConnectOptions, Submitted};
pub use error::PluginError;
pub use identity::Identity;
pub use names::approval_name;
pub use status::render as render_status;

use crate::api::Decision;

/// The file name the plugin runs under; kubectl finds plugins by this prefix.
pub const PLUGIN_NAME: &str = "kubectl-greenlight";

/// What the table falls back to when neither `$COLUMNS` nor the terminal says.
const DEFAULT_WIDTH: usize = 100;

/// Whether the program was started as the kubectl plugin: its file name (argv\[0\],
/// without directory or extension) is `kubectl-greenlight`.
pub fn invoked_as_plugin(argv0: Option<&std::ffi::OsStr>) -> bool {
    argv0
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_stem)
        .is_some_and(|stem| stem == PLUGIN_NAME)
}

/// Greenlight's kubectl plugin: see and decide on promotions.
#[derive(Parser, Debug)]
#[command(name = PLUGIN_NAME, bin_name = "kubectl greenlight", version)]
pub struct PluginCli {
    /// The namespace of the Pipeline and its Releases. Default: the kubeconfig context's.
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// The kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config, else in-cluster.
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context. Default: the current context.
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Each environment of a Pipeline: the version it runs, its health, and the newest
    /// release waiting to enter it with the gates that block it.
    Status {
        /// The Pipeline.
        pipeline: String,
    },
    /// Approve a Release for an environment (counts towards its approval rules).
    Approve(DecisionArgs),
    /// Reject a Release for an environment (blocks it there).
    Reject(DecisionArgs),
    /// Promote a Release into an environment as soon as every gate but the schedule passes.
    Promote {
        #[command(flatten)]
        decision: DecisionArgs,
        /// Required: promote now, ignoring only the schedule gate.
        #[arg(long)]
        now: bool,
    },
    /// Clear a Release's failure in an environment so it may be deployed again, and re-run
    /// its failed gate tests.
    Retry(DecisionArgs),
    /// End the canary step a Release is in now, without the rest of its pause: the next
    /// step, or after the last the whole environment.
    PromoteStep(DecisionArgs),
    /// Abort a Release's canary steps in an environment: its traffic goes back to the
    /// stable release, the canary is deleted, and the Release is Failed there.
    AbortCanary(DecisionArgs),
    /// Roll an environment back to an earlier release that was verified there.
    Rollback {
        /// The Pipeline.
        pipeline: String,
        /// The environment to roll back.
        #[arg(short = 'e', long = "env", value_name = "ENVIRONMENT")]
        environment: String,
        /// The release to go back to. Default: the last good release, else the newest one
        /// verified there before the current one.
        #[arg(long, value_name = "RELEASE")]
        to: Option<String>,
        /// Why, for the audit trail.
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Args, Debug)]
struct DecisionArgs {
    /// The Release.
    release: String,
    /// The environment of the Release's Pipeline.
    #[arg(short = 'e', long = "env", value_name = "ENVIRONMENT")]
    environment: String,
    /// Why, for the audit trail (a change ticket, say).
    #[arg(long)]
    comment: Option<String>,
}

/// Runs the plugin with these arguments (argv\[0\] first): prints what it did, or an
/// error on standard error, and returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = PluginCli::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; returns what to print.
async fn execute(cli: PluginCli) -> Result<String, PluginError> {
    let options = ConnectOptions {
        kubeconfig: cli.kubeconfig,
        context: cli.context,
        namespace: cli.namespace,
    };
    match cli.command {
        Command::Status { pipeline } => {
            let cluster = cluster::Cluster::connect(&options).await?;
            let pipeline = cluster.pipeline(&pipeline).await?;
            let releases = cluster.releases().await?;
            Ok(status::render(
                &pipeline,
                &releases,
                jiff::Timestamp::now(),
                terminal_width(),
            ))
        }
        Command::Approve(args) => decide_on_release(&options, args, Decision::Approve).await,
        Command::Reject(args) => decide_on_release(&options, args, Decision::Reject).await,
        Command::Promote { decision, now } => {
            if !now {
                return Err(PluginError::Invalid(
                    "promote needs --now: it promotes as soon as every other gate passes, \
                     ignoring only the schedule gate"
                        .into(),
                ));
            }
            decide_on_release(&options, decision, Decision::PromoteNow).await
        }
        Command::Retry(args) => decide_on_release(&options, args, Decision::Retry).await,
        Command::PromoteStep(args) => {
            decide_on_release(&options, args, Decision::PromoteStep).await
        }
        Command::AbortCanary(args) => {
            decide_on_release(&options, args, Decision::AbortCanary).await
        }
        Command::Rollback {
            pipeline,
            environment,
            to,
            comment,
        } => rollback(&options, &pipeline, &environment, to.as_deref(), comment).await,
    }
}

/// approve, reject, promote --now, retry, promote-step and abort-canary: an Approval bound
/// to the named Release.
async fn decide_on_release(
    options: &ConnectOptions,
    args: DecisionArgs,
    decision: Decision,
) -> Result<String, PluginError> {
    let cluster = cluster::Cluster::connect(options).await?;
    let release = cluster.release(&args.release).await?;
    let pipeline = cluster.pipeline_of(&release).await?;
    let environment = decide::environment(&pipeline, &args.environment)?;
    let epoch = match decision {
        Decision::Retry => Some(overrides::retry_epoch(
            &pipeline,
            &release,
            &environment.name,
        )?),
        Decision::PromoteStep | Decision::AbortCanary => Some(overrides::canary_epoch(
            &pipeline,
            &release,
            &environment.name,
            decision,
        )?),
        _ => None,
    };
    let ask = decide::Ask {
        release: &release,
        environment,
        decision,
        comment: args.comment,
        epoch: epoch.map(|t| t.to_string()),
    };
    submit(&cluster, &ask).await
}

/// rollback: an Approval bound to the release the environment goes back to.
async fn rollback(
    options: &ConnectOptions,
    pipeline: &str,
    environment: &str,
    to: Option<&str>,
    comment: Option<String>,
) -> Result<String, PluginError> {
    let cluster = cluster::Cluster::connect(options).await?;
    let pipeline = cluster.pipeline(pipeline).await?;
    let environment = decide::environment(&pipeline, environment)?;
    let releases = cluster.releases().await?;
    let plan = overrides::rollback_target(&pipeline, &environment.name, to, &releases)?;
    let release = releases
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(plan.release.as_str()))
        .ok_or_else(|| PluginError::NotFound(format!("Release {} disappeared", plan.release)))?;
    let ask = decide::Ask {
        release,
        environment,
        decision: Decision::Rollback,
        comment,
        epoch: plan.epoch.map(|t| t.to_string()),
    };
    submit(&cluster, &ask).await
}

/// Asks who the caller is, builds the Approval, warns when it cannot have an effect,
/// creates it, and says what happened in one line.
async fn submit(cluster: &cluster::Cluster, ask: &decide::Ask<'_>) -> Result<String, PluginError> {
    let identity = identity::who_am_i(cluster).await?;
    let approval = decide::build(&identity, ask)?;
    for warning in decide::warnings(&identity, ask) {
        eprintln!("warning: {warning}");
    }
    let done = match cluster.submit(&approval).await? {
        Submitted::Created => "created",
        Submitted::AlreadyExists => "already exists",
    };
    Ok(format!(
        "approval {} {done}: {}\n",
        approval.metadata.name.as_deref().unwrap_or_default(),
        decide::describe(&approval, &ask.release.spec.version)
    ))
}

/// `$COLUMNS`, else the width of the terminal on standard output, else 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(|| {
            terminal_size::terminal_size().map(|(terminal_size::Width(w), _)| usize::from(w))
        })
        .filter(|&w| w > 0)
        .unwrap_or(DEFAULT_WIDTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_is_recognised_by_its_file_name_only() {
        let yes = |s: &str| invoked_as_plugin(Some(std::ffi::OsStr::new(s)));
        assert!(yes("kubectl-greenlight"));
        assert!(yes("/usr/local/bin/kubectl-greenlight"));
        assert!(yes("C:/tools/kubectl-greenlight.exe"));
        assert!(!yes("greenlight"));
        assert!(!yes("/opt/kubectl-greenlight/greenlight"));
        assert!(!invoked_as_plugin(None));
    }

    #[test]
    fn the_command_line_parses_global_flags_anywhere() {
        let cli = PluginCli::try_parse_from([
            "kubectl-greenlight",
            "approve",
            "shop-1-4-2",
            "--env",
            "prod",
            "-n",
            "shop",
            "--comment",
            "CAB-1",
        ])
        .unwrap();
        assert_eq!(cli.namespace.as_deref(), Some("shop"));
        let Command::Approve(args) = cli.command else {
            panic!("not approve: {:?}", cli.command);
        };
        assert_eq!(
            (
                args.release.as_str(),
                args.environment.as_str(),
                args.comment.as_deref()
            ),
            ("shop-1-4-2", "prod", Some("CAB-1"))
        );
    }

    #[test]
    fn approve_needs_an_environment() {
        let error = PluginCli::try_parse_from(["kubectl-greenlight", "approve", "r"]).unwrap_err();
        assert!(error.to_string().contains("--env <ENVIRONMENT>"), "{error}");
    }

    #[test]
    fn clap_accepts_the_command_definition() {
        use clap::CommandFactory;
        PluginCli::command().debug_assert();
    }
}
