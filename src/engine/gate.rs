//! The gates, by name: what blocks a candidate (`BlockingGate.gate` in a Release's status)
//! and the `gate` label of the gate metrics.

/// A gate, or a hold that stops an environment whatever its gates say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gate {
    /// `gates.checks`: CI check results on the Release.
    Checks,
    /// `gates.soak`: time healthy upstream.
    Soak,
    /// `gates.approvals`: people's sign-off.
    Approvals,
    /// `gates.schedule`: promotion windows.
    Schedule,
    /// `gates.freeze`: change freezes.
    Freeze,
    /// `gates.metrics`: Prometheus queries.
    Metrics,
    /// `gates.webhooks`: external checks.
    Webhooks,
    /// `gates.tests`: test Jobs.
    Tests,
    /// Metrics, webhooks and tests wait for the cheaper gates.
    Pending,
    /// The environment is busy or Degraded.
    Environment,
    /// Its target workloads cannot be found or reached.
    Target,
    /// The pipeline is suspended.
    Suspended,
    /// The environment is pinned to a release (`pin`).
    Pinned,
    /// A person's commit changed the images in Git (GitOps mode).
    ChangedInGit,
}

impl Gate {
    /// Every gate, in the order people read them.
    pub const ALL: [Self; 14] = [
        Self::Checks,
        Self::Soak,
        Self::Approvals,
        Self::Schedule,
        Self::Freeze,
        Self::Metrics,
        Self::Webhooks,
        Self::Tests,
        Self::Pending,
        Self::Environment,
        Self::Target,
        Self::Suspended,
        Self::Pinned,
        Self::ChangedInGit,
    ];

    /// The holds every environment can have, whatever its spec (a pin may come with any
    /// change of the Pipeline).
    pub const HOLDS: [Self; 5] = [
        Self::Environment,
        Self::Target,
        Self::Suspended,
        Self::Pinned,
        Self::ChangedInGit,
    ];

    /// Its name in status and metrics.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Checks => "checks",
            Self::Soak => "soak",
            Self::Approvals => "approvals",
            Self::Schedule => "schedule",
            Self::Freeze => "freeze",
            Self::Metrics => "metrics",
            Self::Webhooks => "webhooks",
            Self::Tests => "tests",
            Self::Pending => "pending",
            Self::Environment => "environment",
            Self::Target => "target",
            Self::Suspended => "suspended",
            Self::Pinned => "pinned",
            Self::ChangedInGit => "changed-in-git",
        }
    }
}

/// Every gate name a decision can report (`greenlight_gate_evaluations_total{gate}`).
pub const GATES: [&str; 14] = {
    let mut names = [""; 14];
    let mut i = 0;
    while i < Gate::ALL.len() {
        names[i] = Gate::ALL[i].label();
        i += 1;
    }
    names
};

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}
