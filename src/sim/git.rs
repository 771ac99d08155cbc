//! The simulated repositories of environments in GitOps mode: commits in memory, and an
//! applier (Argo CD, Flux, or whatever applies the manifests to the workloads) that
//! reaches each new head after a delay.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::world::add;
use crate::engine::{GitChange, GitRead, GitView, SyncState, short};

/// One commit.
#[derive(Clone, Debug)]
struct SimCommit {
    id: String,
    images: BTreeMap<String, String>,
    /// Greenlight's, for this environment (its trailers say so).
    greenlight: bool,
    author: String,
    summary: String,
}

/// What applies a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applier {
    /// An Argo CD Application or Flux Kustomization: it reports its revision and health.
    SyncObject,
    /// Something that applies the images to the target workloads and reports nothing.
    Workloads,
}

/// An environment's repository.
#[derive(Clone, Debug)]
pub struct SimRepo {
    commits: Vec<SimCommit>,
    applier: Applier,
    /// The commit the applier is at.
    applied: usize,
    /// When it reaches the head.
    apply_at: Option<Timestamp>,
    /// When the applied images are healthy (a sync object's health).
    healthy_at: Option<Timestamp>,
    /// Why it cannot be reached, while it cannot.
    unreachable: Option<String>,
    /// Commits made so far (ids are counted, for a deterministic history).
    next_id: u64,
}

impl SimRepo {
    /// A repository whose first commit, by a person, declares `images`.
    pub fn new(images: BTreeMap<String, String>, applier: Applier, seed: u64) -> Self {
        let mut repo = Self {
            commits: Vec::new(),
            applier,
            applied: 0,
            apply_at: None,
            healthy_at: None,
            unreachable: None,
            next_id: seed << 32,
        };
        repo.push(
            images,
            false,
            "Platform Team <platform@example.com>",
            "initial layout",
        );
        repo
    }

    /// Who applies it.
    pub fn applier(&self) -> Applier {
        self.applier
    }

    fn push(
        &mut self,
        images: BTreeMap<String, String>,
        greenlight: bool,
        author: &str,
        summary: &str,
    ) {
        self.next_id += 1;
        self.commits.push(SimCommit {
            id: format!("{:040x}", self.next_id.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            images,
            greenlight,
            author: author.to_owned(),
            summary: summary.to_owned(),
        });
    }

    fn head(&self) -> &SimCommit {
        &self.commits[self.commits.len() - 1]
    }

    /// The images the head declares.
    pub fn head_images(&self) -> &BTreeMap<String, String> {
        &self.head().images
    }

    /// The images the applier applied.
    pub fn applied_images(&self) -> &BTreeMap<String, String> {
        &self.commits[self.applied].images
    }

    /// Greenlight's commit of `images`, unless the head declares them already (the
    /// controller reads the branch before it commits). Whether it committed.
    pub fn commit(
        &mut self,
        images: &BTreeMap<String, String>,
        summary: &str,
        now: Timestamp,
        delay: std::time::Duration,
    ) -> bool {
        if self.unreachable.is_some() || self.head_images() == images {
            return false;
        }
        self.push(
            images.clone(),
            true,
            "Greenlight <greenlight@greenlight.dev>",
            summary,
        );
        self.apply_at = Some(add(now, delay));
        true
    }

    /// A person's commit that sets `images` (a pin in Git).
    pub fn commit_as_person(
        &mut self,
        images: BTreeMap<String, String>,
        author: &str,
        summary: &str,
        now: Timestamp,
        delay: std::time::Duration,
    ) {
        self.push(images, false, author, summary);
        self.apply_at = Some(add(now, delay));
    }

    /// Makes the repository unreachable (`Some(why)`) or reachable again.
    pub fn set_unreachable(&mut self, why: Option<&str>) {
        self.unreachable = why.map(str::to_owned);
    }

    /// The next instant it changes by itself.
    pub fn next_event(&self) -> Option<Timestamp> {
        [self.apply_at, self.healthy_at].into_iter().flatten().min()
    }

    /// Moves it to `now`: the applier reaches the head when due. Whether it did (the
    /// caller then rolls the workloads out, for [`Applier::Workloads`]).
    pub fn advance(&mut self, now: Timestamp, rollout: std::time::Duration) -> bool {
        let mut changed = false;
        if self.apply_at.is_some_and(|t| t <= now) {
            self.apply_at = None;
            self.applied = self.commits.len() - 1;
            self.healthy_at = Some(add(now, rollout));
            changed = true;
        }
        if self.healthy_at.is_some_and(|t| t <= now) {
            self.healthy_at = None;
            changed = true;
        }
        changed
    }

    /// What the controller reads of it; `failing`: the applied images fail to roll out.
    pub fn view(&self, environment: &str, failing: bool) -> GitView {
        let state = match &self.unreachable {
            Some(why) => Err(why.clone()),
            None => Ok(GitRead {
                head: self.head().id.clone(),
                images: self.head().images.clone(),
                changed_by: self.changed_by(),
                sync: (self.applier == Applier::SyncObject).then(|| self.sync(failing)),
            }),
        };
        GitView {
            environment: environment.to_owned(),
            state,
        }
    }

    fn sync(&self, failing: bool) -> SyncState {
        let applied = &self.commits[self.applied];
        if applied.images != self.head().images {
            return SyncState::Waiting(format!("at commit {}", short(&applied.id)));
        }
        if failing {
            SyncState::Failed("Deployment web: progress deadline exceeded".into())
        } else if self.healthy_at.is_some() {
            SyncState::Progressing("waiting for the rollout to finish".into())
        } else {
            SyncState::Healthy
        }
    }

    /// A person's commit that changed the images after Greenlight's last commit, while
    /// the head no longer declares what Greenlight wrote.
    fn changed_by(&self) -> Option<GitChange> {
        let ours = self.commits.iter().rposition(|c| c.greenlight)?;
        if self.head().images == self.commits[ours].images {
            return None;
        }
        let changer = (ours + 1..self.commits.len())
            .rev()
            .find(|&i| self.commits[i].images != self.commits[i - 1].images)?;
        let commit = &self.commits[changer];
        Some(GitChange {
            commit: commit.id.clone(),
            author: commit.author.clone(),
            summary: commit.summary.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn images(tag: &str) -> BTreeMap<String, String> {
        [("web".to_owned(), format!("web:{tag}"))].into()
    }

    #[test]
    fn a_person_changing_the_images_after_greenlight_is_reported_until_reverted() {
        let now = Timestamp::UNIX_EPOCH;
        let mut repo = SimRepo::new(images("1"), Applier::SyncObject, 1);
        assert_eq!(
            repo.view("prod", false).state.unwrap().changed_by,
            None,
            "a person's layout before Greenlight is the start"
        );
        assert!(repo.commit(&images("2"), "deploy 2", now, Duration::ZERO));
        assert!(
            !repo.commit(&images("2"), "deploy 2", now, Duration::ZERO),
            "declared already: no second commit"
        );
        repo.commit_as_person(
            images("1"),
            "Jane <jane@example.com>",
            "pin web to 1",
            now,
            Duration::ZERO,
        );
        let change = repo.view("prod", false).state.unwrap().changed_by.unwrap();
        assert_eq!(
            (change.author.as_str(), change.summary.as_str()),
            ("Jane <jane@example.com>", "pin web to 1")
        );
        repo.commit_as_person(
            images("2"),
            "Jane <jane@example.com>",
            "revert the pin",
            now,
            Duration::ZERO,
        );
        assert_eq!(repo.view("prod", false).state.unwrap().changed_by, None);
    }

    #[test]
    fn the_applier_reaches_the_head_after_its_delay() {
        let now = Timestamp::UNIX_EPOCH;
        let later = now + jiff::SignedDuration::from_secs(60);
        let mut repo = SimRepo::new(images("1"), Applier::SyncObject, 1);
        repo.commit(&images("2"), "deploy 2", now, Duration::from_secs(60));
        assert!(matches!(
            repo.view("prod", false).state.unwrap().sync,
            Some(SyncState::Waiting(_))
        ));
        assert!(repo.advance(later, Duration::from_secs(30)));
        assert!(matches!(
            repo.view("prod", false).state.unwrap().sync,
            Some(SyncState::Progressing(_))
        ));
        assert!(repo.advance(
            later + jiff::SignedDuration::from_secs(30),
            Duration::from_secs(30)
        ));
        assert_eq!(
            repo.view("prod", false).state.unwrap().sync,
            Some(SyncState::Healthy)
        );
        assert!(matches!(
            repo.view("prod", true).state.unwrap().sync,
            Some(SyncState::Failed(_))
        ));
        repo.set_unreachable(Some("connection refused"));
        assert_eq!(
            repo.view("prod", false).state,
            Err("connection refused".into())
        );
        assert!(
            !repo.commit(&images("3"), "deploy 3", later, Duration::ZERO),
            "an unreachable repository takes no commit"
        );
    }
}
