//! What can go wrong in the kubectl plugin, each in words that say what and where.

use std::path::PathBuf;

/// A plugin command failed; the message is printed as is, and the exit status is 1.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file given with `--kubeconfig` could not be read or parsed.
    #[error("could not read the kubeconfig {}: {}", path.display(), chain(source))]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig has no usable context of that name (or no current context).
    #[error("could not use the kubeconfig context {context}: {}", chain(source))]
    Context {
        /// `"name"` from `--context`, or `current`.
        context: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor an in-cluster config was found.
    #[error(
        "found no cluster to talk to (set $KUBECONFIG or use --kubeconfig): {}",
        chain(source)
    )]
    NoConfig {
        /// Why.
        #[source]
        source: kube::config::InferConfigError,
    },
    /// The client could not be built from the configuration (TLS, proxy, credentials).
    #[error("could not build a Kubernetes client: {}", chain(source))]
    Client {
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// An API request failed; `what` says which and on what object.
    #[error("{what}: {}", api_message(source))]
    Api {
        /// The request, in words.
        what: String,
        /// The API server's answer or the transport error.
        #[source]
        source: kube::Error,
    },
    /// An object the command needs does not exist; the message names what does.
    #[error("{0}")]
    NotFound(String),
    /// The request makes no sense for the objects as they are (an unknown environment,
    /// nothing to roll back to).
    #[error("{0}")]
    Invalid(String),
    /// Admission or authorization refused the Approval; carries the API server's message.
    #[error("the API server refused {what}: {message}")]
    Refused {
        /// What was refused.
        what: String,
        /// The API server's message, verbatim.
        message: String,
    },
    /// An Approval of the same name exists with a different spec; Approvals are immutable.
    #[error("{0}")]
    Conflict(String),
}

/// The API server's own message for an API error, else the whole error chain.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => {
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!("{}, ", status.reason)
            };
            format!("{} ({reason}HTTP {})", status.message, status.code)
        }
        other => chain(other),
    }
}

/// An error and all its sources, joined with `: `.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// The HTTP status of an API error, if the API server answered.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
