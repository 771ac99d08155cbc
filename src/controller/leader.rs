//! Leader election with a `coordination.k8s.io/v1` Lease, so two replicas never act at
//! once. The replica holding the Lease renews it every [`LeaseConfig::retry`]; the others
//! take it over only after they have seen it unchanged for a whole lease duration, measured
//! on their own clock (so clock skew between nodes does not matter). A leader that cannot
//! renew within the renew deadline stops acting before anyone else may start, and a replica
//! shutting down hands the Lease over by clearing its holder.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{PostParams, ResourceExt},
};
use tokio::sync::watch;

/// Whether this replica may act. Cloned wherever a write is made; every write checks it.
#[derive(Clone, Debug)]
pub struct Leadership(Arc<watch::Sender<bool>>);

impl Leadership {
    /// A replica that always leads (leader election off: a single replica).
    pub fn always() -> Self {
        Self(Arc::new(watch::Sender::new(true)))
    }

    /// A replica that leads only once elected.
    pub fn standby() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }

    /// Whether this replica leads now.
    pub fn is_leading(&self) -> bool {
        *self.0.borrow()
    }

    fn set(&self, leading: bool) {
        self.0
            .send_if_modified(|now| std::mem::replace(now, leading) != leading);
    }

    /// Changes of leadership, starting with the current state.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// Which Lease, who we are, and the timings (client-go's defaults).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub duration: Duration,
    /// A leader that could not renew for this long stops acting; shorter than `duration`.
    pub renew_deadline: Duration,
    /// How often to renew or try to acquire.
    pub retry: Duration,
}

impl LeaseConfig {
    /// The defaults: a 15 s lease, 10 s renew deadline, a try every 2 s.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// There is no Lease: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or its holder stopped renewing: take it over.
    TakeOver,
    /// Someone else holds it.
    Follow {
        /// Who.
        holder: String,
    },
}

/// Decides from the Lease and how long we have seen it unchanged.
pub fn next_step(lease: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> Step {
    let Some(spec) = lease else {
        return Step::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Step::Renew,
        None | Some("") => Step::TakeOver,
        Some(holder) => {
            let duration = spec.lease_duration_seconds.unwrap_or(15).max(1);
            if unchanged_for > Duration::from_secs(duration.unsigned_abs().into()) {
                Step::TakeOver
            } else {
                Step::Follow {
                    holder: holder.to_owned(),
                }
            }
        }
    }
}

/// The part of a Lease that changes on every renewal: if it is the same, nobody renewed.
type Record = (Option<String>, Option<MicroTime>, Option<String>);

fn record_of(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    (
        spec.holder_identity,
        spec.renew_time,
        lease.metadata.resource_version.clone(),
    )
}

/// Runs the election for one replica.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    leadership: Leadership,
    /// The Lease record last seen, and since when (on our clock).
    seen: Option<(Record, Instant)>,
}

impl Elector {
    /// An elector that reports into `leadership`.
    pub fn new(client: Client, config: LeaseConfig, leadership: Leadership) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            leadership,
            seen: None,
        }
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.duration.as_secs().try_into().unwrap_or(15)),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One round: read the Lease and create, renew or take it over. Returns whether we
    /// hold it afterwards. Losing a race (409) means someone else got it.
    pub async fn try_once(&mut self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.config.name).await?;
        let unchanged_for = match (&current, &self.seen) {
            (Some(lease), Some((record, since))) if *record == record_of(lease) => since.elapsed(),
            _ => {
                self.seen = current.as_ref().map(|l| (record_of(l), Instant::now()));
                Duration::ZERO
            }
        };
        let step = next_step(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.config.identity,
            unchanged_for,
        );
        let result = match (step, current) {
            (Step::Follow { holder }, _) => {
                tracing::debug!(%holder, "the Lease is held by another replica");
                return Ok(false);
            }
            (Step::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(0, None)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Step::Renew, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                lease.spec = Some(self.spec(old.lease_transitions.unwrap_or(0), old.acquire_time));
                self.api
                    .replace(&lease.name_any(), &PostParams::default(), &lease)
                    .await
            }
            (Step::TakeOver, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                lease.spec = Some(self.spec(old.lease_transitions.unwrap_or(0) + 1, None));
                // The resourceVersion we read makes this fail if anyone else wrote first.
                self.api
                    .replace(&lease.name_any(), &PostParams::default(), &lease)
                    .await
            }
            (Step::Renew | Step::TakeOver, None) => return Ok(false),
        };
        match result {
            Ok(lease) => {
                self.seen = Some((record_of(&lease), Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Keeps electing until `shutdown` turns true, then hands the Lease over.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut last_renewal: Option<Instant> = None;
        loop {
            match tokio::time::timeout(
                self.config.retry.max(Duration::from_secs(1)),
                self.try_once(),
            )
            .await
            {
                Ok(Ok(true)) => {
                    if !self.leadership.is_leading() {
                        tracing::info!(identity = %self.config.identity, "acquired the Lease; leading");
                    }
                    last_renewal = Some(Instant::now());
                    self.leadership.set(true);
                }
                Ok(Ok(false)) => {
                    if self.leadership.is_leading() {
                        tracing::warn!("lost the Lease; stopped acting");
                    }
                    last_renewal = None;
                    self.leadership.set(false);
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "could not read or renew the Lease");
                }
                Err(_) => tracing::warn!("the Lease call timed out"),
            }
            // Step down before anyone else may take over: renew deadline < lease duration.
            if last_renewal.is_some_and(|at| at.elapsed() > self.config.renew_deadline) {
                tracing::warn!("could not renew the Lease in time; stopped acting");
                last_renewal = None;
                self.leadership.set(false);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        self.release().await;
    }

    /// Stops acting, then clears the holder so a standby takes over at its next try.
    async fn release(&mut self) {
        if !self.leadership.is_leading() {
            return;
        }
        self.leadership.set(false);
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!("handed the Lease over"),
            Err(error) => {
                tracing::warn!(%error, "could not hand the Lease over; it expires by itself")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_lease_is_created_and_our_own_is_renewed() {
        assert_eq!(next_step(None, "a", Duration::ZERO), Step::Create);
        assert_eq!(
            next_step(Some(&held_by(Some("a"))), "a", Duration::ZERO),
            Step::Renew
        );
    }

    #[test]
    fn another_holder_is_followed_until_it_stops_renewing_for_a_lease_duration() {
        let lease = held_by(Some("b"));
        assert_eq!(
            next_step(Some(&lease), "a", Duration::from_secs(14)),
            Step::Follow { holder: "b".into() }
        );
        assert_eq!(
            next_step(Some(&lease), "a", Duration::from_secs(16)),
            Step::TakeOver
        );
    }

    #[test]
    fn a_released_lease_is_taken_over_at_once() {
        assert_eq!(
            next_step(Some(&held_by(None)), "a", Duration::ZERO),
            Step::TakeOver
        );
        assert_eq!(
            next_step(Some(&held_by(Some(""))), "a", Duration::ZERO),
            Step::TakeOver
        );
    }

    #[test]
    fn leadership_reports_changes_once() {
        let leadership = Leadership::standby();
        let mut changes = leadership.subscribe();
        assert!(!leadership.is_leading());
        leadership.set(true);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        leadership.set(true);
        assert!(
            !changes.has_changed().unwrap(),
            "setting the same state is not a change"
        );
    }
}
