//! A GitOps repository through libgit2 (blocking: callers run it on a blocking thread):
//! a shallow fetch of one branch into a bare cache, the layout's files at its head, the
//! history that says who last changed the images, and one commit pushed as a
//! compare-and-swap on the branch.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use git2::{
    CertificateCheckStatus, Cred, CredentialType, ErrorClass, ErrorCode, FetchOptions, Oid,
    PushOptions, RemoteCallbacks, Repository, Signature,
};

use super::{image::ImageRef, layout::Files, layout::Layout};

/// How deep a fetch goes: the history searched for Greenlight's last commit and a
/// person's change after it.
pub const HISTORY_DEPTH: i32 = 100;

/// How many times a commit is re-applied on a branch that keeps moving under it.
pub const PUSH_ATTEMPTS: u32 = 5;

/// The trailer that names the environment of a Greenlight commit.
pub const TRAILER_ENVIRONMENT: &str = "Greenlight-Environment";
/// The trailer that names the Pipeline (`namespace/name`).
pub const TRAILER_PIPELINE: &str = "Greenlight-Pipeline";
/// The trailer that names the release (absent for the baseline images).
pub const TRAILER_RELEASE: &str = "Greenlight-Release";
/// The trailer that says why (`deploy`, `rollback`, `restore`).
pub const TRAILER_PURPOSE: &str = "Greenlight-Purpose";

/// What went wrong, in words a person can act on (never credentials).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The server could not be reached or the transfer failed.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: git2::Error,
    },
    /// The branch does not exist on the server.
    #[error("branch {0} does not exist")]
    NoBranch(String),
    /// Someone else pushed first: fetch, re-apply, push again.
    #[error("branch {branch} moved while committing (now at {now})")]
    Moved { branch: String, now: String },
    /// The push was refused for another reason (a protected branch, say).
    #[error("the push to {branch} was refused: {reason}")]
    Refused { branch: String, reason: String },
    /// The files do not declare the images the way the layout says.
    #[error("{0}")]
    Layout(String),
    /// The Secret with the credentials cannot be read, or the server refused (or asks for
    /// more than) what it holds, or its host key is not in its known_hosts.
    #[error("{0}")]
    Credentials(String),
    /// The local cache failed.
    #[error("local repository cache: {0}")]
    Cache(#[source] git2::Error),
}

impl GitError {
    /// Whether trying again soon can help (unlike a layout error, which needs a person).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Layout(_))
    }
}

/// Credentials from the Secret `secretRef` names.
#[derive(Clone, Default)]
pub struct Credentials {
    /// `username` (https and ssh; default `git`).
    pub username: Option<String>,
    /// `password`: a token, for https.
    pub password: Option<String>,
    /// `identity`: a private key, for ssh.
    pub identity: Option<String>,
    /// `known_hosts`: the server keys ssh accepts.
    pub known_hosts: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("identity", &self.identity.as_ref().map(|_| "…"))
            .field("known_hosts", &self.known_hosts.is_some())
            .finish()
    }
}

/// One branch of one repository, and its bare cache on disk.
pub struct Branch {
    url: String,
    branch: String,
    credentials: Credentials,
    repo: Repository,
}

/// A commit's author and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// Its id.
    pub id: String,
    /// `Name <email>`.
    pub author: String,
    /// Its first line.
    pub summary: String,
    /// Its `Key: value` trailers.
    pub trailers: BTreeMap<String, String>,
}

/// The branch as fetched.
#[derive(Clone, Debug)]
pub struct Head {
    /// Its head commit.
    pub commit: String,
    /// The files the layout reads.
    pub files: Files,
    /// The images they declare.
    pub images: BTreeMap<String, ImageRef>,
    /// A person's commit that changed the images after Greenlight's last commit for this
    /// environment, while the head no longer declares what Greenlight wrote.
    pub changed_by: Option<CommitInfo>,
    /// The commits from the head down to the one that last changed the images, newest
    /// first: the revisions that declare these images (an applier at any of them applied
    /// them).
    pub declaring: Vec<String>,
}

impl Branch {
    /// Opens (or creates) the bare cache for `url` under `cache`.
    pub fn open(
        cache: &Path,
        url: &str,
        branch: &str,
        credentials: Credentials,
    ) -> Result<Self, GitError> {
        let dir = cache.join(cache_name(url));
        let repo = match Repository::open_bare(&dir) {
            Ok(repo) => repo,
            Err(_) => Repository::init_bare(&dir).map_err(GitError::Cache)?,
        };
        Ok(Self {
            url: url.to_owned(),
            branch: branch.to_owned(),
            credentials,
            repo,
        })
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// Fetches the branch (the last [`HISTORY_DEPTH`] commits) and reads it for
    /// `environment` of `pipeline` (`namespace/name`).
    pub fn fetch(
        &self,
        layout: &Layout,
        pipeline: &str,
        environment: &str,
    ) -> Result<Head, GitError> {
        let mut remote = self
            .repo
            .remote_anonymous(&self.url)
            .map_err(GitError::Cache)?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(self.callbacks());
        options.depth(HISTORY_DEPTH);
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(|source| self.unreachable(source))?;
        self.read_fetched(layout, pipeline, environment)
    }

    /// Reads the branch as last fetched (another environment's read of it, just now), with
    /// no request to the server.
    pub fn read_fetched(
        &self,
        layout: &Layout,
        pipeline: &str,
        environment: &str,
    ) -> Result<Head, GitError> {
        let head = self
            .repo
            .refname_to_id(&self.tracking_ref())
            .map_err(|_| GitError::NoBranch(self.branch.clone()))?;
        self.read(head, layout, pipeline, environment)
    }

    /// Reads the branch at `head`.
    fn read(
        &self,
        head: Oid,
        layout: &Layout,
        pipeline: &str,
        environment: &str,
    ) -> Result<Head, GitError> {
        let files = self.files_at(head, layout)?;
        let images = layout.read(&files).map_err(GitError::Layout)?;
        let (changed_by, declaring) = self.history(head, layout, &images, pipeline, environment)?;
        Ok(Head {
            commit: head.to_string(),
            files,
            images,
            changed_by,
            declaring,
        })
    }

    /// The files of `commit` the layout reads.
    fn files_at(&self, commit: Oid, layout: &Layout) -> Result<Files, GitError> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(GitError::Cache)?;
        let mut files = Files::new();
        let mut failed = None;
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let path = format!("{dir}{}", entry.name().unwrap_or_default());
            if entry.kind() == Some(git2::ObjectType::Blob) && layout.reads(&path) {
                match entry.to_object(&self.repo).map(|o| o.peel_to_blob()) {
                    Ok(Ok(blob)) => {
                        files.insert(path, String::from_utf8_lossy(blob.content()).into_owned());
                    }
                    Ok(Err(e)) | Err(e) => failed = Some(e),
                }
            }
            git2::TreeWalkResult::Ok
        })
        .map_err(GitError::Cache)?;
        match failed {
            Some(e) => Err(GitError::Cache(e)),
            None => Ok(files),
        }
    }

    /// Walks back from `head`: the commits that still declare `images`, and a person's
    /// change after Greenlight's last commit for this environment.
    fn history(
        &self,
        head: Oid,
        layout: &Layout,
        images: &BTreeMap<String, ImageRef>,
        pipeline: &str,
        environment: &str,
    ) -> Result<(Option<CommitInfo>, Vec<String>), GitError> {
        let mut declaring = Vec::new();
        let mut changer: Option<CommitInfo> = None;
        let mut current = head;
        for _ in 0..HISTORY_DEPTH {
            let commit = self.repo.find_commit(current).map_err(GitError::Cache)?;
            let info = info_of(&commit);
            // A shallow history ends in a commit whose parents were not fetched.
            let parent = commit
                .parent_ids()
                .next()
                .filter(|p| self.repo.find_commit(*p).is_ok());
            if changer.is_none() {
                declaring.push(info.id.clone());
                let same_as_parent = match parent {
                    Some(parent) => self.images_at(parent, layout)?.as_ref() == Some(images),
                    None => false,
                };
                if !same_as_parent {
                    changer = Some(info.clone());
                }
            }
            let ours = info.trailers.get(TRAILER_ENVIRONMENT).map(String::as_str)
                == Some(environment)
                && info.trailers.get(TRAILER_PIPELINE).map(String::as_str) == Some(pipeline);
            if ours {
                // Greenlight's last commit: a person changed the images since if the head
                // declares others than it wrote.
                let written = self.images_at(current, layout)?;
                let changed_by = if written.as_ref() == Some(images) {
                    None
                } else {
                    changer
                };
                return Ok((changed_by, declaring));
            }
            let Some(parent) = parent else { break };
            current = parent;
        }
        // No commit of Greenlight's within reach: the repository as found is the start.
        Ok((None, declaring))
    }

    /// The images `commit` declares, `None` where its files do not read.
    fn images_at(
        &self,
        commit: Oid,
        layout: &Layout,
    ) -> Result<Option<BTreeMap<String, ImageRef>>, GitError> {
        let files = self.files_at(commit, layout)?;
        Ok(layout.read(&files).ok())
    }

    /// Makes the branch declare `images` for `environment` of `pipeline` with one commit
    /// saying `message`, unless it declares them already: after a crash between the push
    /// and the status write, the commit is found and not made twice. A branch that moved
    /// under the commit is fetched again and the images re-applied, with backoff, up to
    /// [`PUSH_ATTEMPTS`] times. The branch as it is then.
    pub fn commit_images(
        &self,
        layout: &Layout,
        pipeline: &str,
        environment: &str,
        images: &BTreeMap<String, String>,
        message: &str,
        author: (&str, &str),
    ) -> Result<Head, GitError> {
        let mut backoff = std::time::Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let head = self.fetch(layout, pipeline, environment)?;
            let declared = images.iter().all(|(artifact, image)| {
                head.images.get(artifact)
                    == Some(&ImageRef::parse(image).keep(layout.parts(artifact)))
            });
            if declared {
                return Ok(head);
            }
            let changed = layout
                .write(&head.files, images)
                .map_err(GitError::Layout)?;
            match self.commit(&head.commit, &changed, message, author) {
                Ok(commit) => {
                    let commit = Oid::from_str(&commit).map_err(GitError::Cache)?;
                    return self.read(commit, layout, pipeline, environment);
                }
                Err(GitError::Moved { .. }) if attempt < PUSH_ATTEMPTS => {
                    std::thread::sleep(backoff);
                    backoff *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Commits `changed` (whole files, by path) on top of `parent` and pushes it, only if
    /// the branch is still at `parent`. The new commit's id.
    pub fn commit(
        &self,
        parent: &str,
        changed: &Files,
        message: &str,
        author: (&str, &str),
    ) -> Result<String, GitError> {
        let parent = Oid::from_str(parent).map_err(GitError::Cache)?;
        let parent_commit = self.repo.find_commit(parent).map_err(GitError::Cache)?;
        let mut index = git2::Index::new().map_err(GitError::Cache)?;
        index
            .read_tree(&parent_commit.tree().map_err(GitError::Cache)?)
            .map_err(GitError::Cache)?;
        for (path, text) in changed {
            let mut entry = match index.get_path(Path::new(path), 0) {
                Some(entry) => entry,
                None => new_entry(path),
            };
            entry.file_size = text.len() as u32;
            entry.id = self.repo.blob(text.as_bytes()).map_err(GitError::Cache)?;
            index.add(&entry).map_err(GitError::Cache)?;
        }
        let tree_id = index.write_tree_to(&self.repo).map_err(GitError::Cache)?;
        let tree = self.repo.find_tree(tree_id).map_err(GitError::Cache)?;
        let signature = Signature::now(author.0, author.1).map_err(GitError::Cache)?;
        let commit = self
            .repo
            .commit(
                None,
                &signature,
                &signature,
                message,
                &tree,
                &[&parent_commit],
            )
            .map_err(GitError::Cache)?;
        self.push(parent, commit)?;
        // The tracking ref follows, so a read before the next fetch sees the commit.
        self.repo
            .reference(&self.tracking_ref(), commit, true, "greenlight commit")
            .map_err(GitError::Cache)?;
        Ok(commit.to_string())
    }

    /// Pushes `commit` to the branch as a compare-and-swap: refused unless the server's
    /// branch is `expected` (the negotiation sees what it is), and the server's own
    /// old-value check closes the gap after that.
    fn push(&self, expected: Oid, commit: Oid) -> Result<(), GitError> {
        let staging = "refs/greenlight/push";
        self.repo
            .reference(staging, commit, true, "greenlight push")
            .map_err(GitError::Cache)?;
        let moved = std::cell::RefCell::new(None::<String>);
        let refused = std::cell::RefCell::new(None::<String>);
        let mut callbacks = self.callbacks();
        callbacks.push_negotiation(|updates| {
            for update in updates {
                // `src`: what the server's branch is now; `dst`: our commit.
                if update.src() != expected {
                    *moved.borrow_mut() = Some(update.src().to_string());
                    return Err(git2::Error::from_str("the branch moved"));
                }
            }
            Ok(())
        });
        callbacks.push_update_reference(|_, status| {
            if let Some(status) = status {
                *refused.borrow_mut() = Some(status.to_owned());
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(callbacks);
        let mut remote = self
            .repo
            .remote_anonymous(&self.url)
            .map_err(GitError::Cache)?;
        let refspec = format!("{staging}:refs/heads/{}", self.branch);
        let result = remote.push(&[refspec.as_str()], Some(&mut options));
        drop(options);
        if let Some(now) = moved.into_inner() {
            return Err(GitError::Moved {
                branch: self.branch.clone(),
                now,
            });
        }
        result.map_err(|source| self.unreachable(source))?;
        match refused.into_inner() {
            Some(reason)
                if reason.contains("fetch first") || reason.contains("non-fast-forward") =>
            {
                Err(GitError::Moved {
                    branch: self.branch.clone(),
                    now: "unknown".into(),
                })
            }
            Some(reason) => Err(GitError::Refused {
                branch: self.branch.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// A transfer's error: refused or missing credentials (our callbacks' answers, or
    /// libgit2's own authentication error) name the Secret; anything else is the server.
    fn unreachable(&self, source: git2::Error) -> GitError {
        if source.class() == ErrorClass::Callback || source.code() == ErrorCode::Auth {
            return GitError::Credentials(format!("{}: {}", self.url, source.message()));
        }
        GitError::Unreachable {
            url: self.url.clone(),
            source,
        }
    }

    /// Credentials and host-key checks for every connection.
    fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        let credentials = &self.credentials;
        // libgit2 asks again after each refusal, up to its replay limit ("too many redirects
        // or authentication replays"): the Secret's credentials are offered once per
        // connection, and asked again means refused.
        let mut offered = CredentialType::empty();
        callbacks.credentials(move |_url, from_url, allowed| {
            let username = credentials
                .username
                .as_deref()
                .or(from_url)
                .unwrap_or("git");
            if allowed.contains(CredentialType::SSH_MEMORY)
                && let Some(key) = &credentials.identity
            {
                if offered.contains(CredentialType::SSH_MEMORY) {
                    return Err(refused(
                        "the server refused the identity (ssh key) in the Secret",
                    ));
                }
                offered |= CredentialType::SSH_MEMORY;
                return Cred::ssh_key_from_memory(username, None, key, None);
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
                && let Some(password) = &credentials.password
            {
                if offered.contains(CredentialType::USER_PASS_PLAINTEXT) {
                    return Err(refused(
                        "the server refused the username and password in the Secret",
                    ));
                }
                offered |= CredentialType::USER_PASS_PLAINTEXT;
                return Cred::userpass_plaintext(username, password);
            }
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(username);
            }
            Err(refused(
                "the server asks for credentials the Secret does not hold",
            ))
        });
        callbacks.certificate_check(move |cert, host| {
            let Some(hostkey) = cert.as_hostkey() else {
                // TLS: libgit2 verified the chain against the system's CA certificates.
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let (Some(key), Some(known)) = (hostkey.hostkey(), &credentials.known_hosts) else {
                return Err(refused(
                    "ssh needs known_hosts in the Secret to trust the server",
                ));
            };
            if known_hosts_trust(known, host, key) {
                Ok(CertificateCheckStatus::CertificateOk)
            } else {
                Err(refused(&format!(
                    "the host key of {host} is not in the Secret's known_hosts"
                )))
            }
        });
        callbacks
    }
}

/// An answer of the credential or host-key callbacks that refuses the connection: what
/// the Secret holds (or lacks) does not do.
fn refused(message: &str) -> git2::Error {
    git2::Error::new(ErrorCode::Auth, ErrorClass::Callback, message)
}

/// Whether `known_hosts` lists `key` for `host` (plain host names, `[host]:port`, and
/// comma-separated lists; hashed entries are not read).
fn known_hosts_trust(known_hosts: &str, host: &str, key: &[u8]) -> bool {
    use base64::Engine;
    known_hosts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(_kind), Some(encoded)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let names_host = hosts.split(',').any(|h| {
            h == host
                || h.strip_prefix('[')
                    .and_then(|h| h.split_once("]:"))
                    .is_some_and(|(h, _)| h == host)
        });
        names_host
            && base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .is_ok_and(|decoded| decoded == key)
    })
}

/// An index entry for a new file.
fn new_entry(path: &str) -> git2::IndexEntry {
    git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        file_size: 0,
        id: Oid::ZERO_SHA1,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// A commit's author, summary and trailers.
fn info_of(commit: &git2::Commit<'_>) -> CommitInfo {
    let author = commit.author();
    let message = commit.message().unwrap_or_default();
    CommitInfo {
        id: commit.id().to_string(),
        author: format!(
            "{} <{}>",
            author.name().unwrap_or_default(),
            author.email().unwrap_or_default()
        ),
        summary: commit
            .summary()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_owned(),
        trailers: trailers(message),
    }
}

/// The `Key: value` lines of a message's last paragraph.
pub fn trailers(message: &str) -> BTreeMap<String, String> {
    let last = message.trim_end().rsplit("\n\n").next().unwrap_or_default();
    last.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(": ")?;
            (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                .then(|| (key.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// A directory name for `url`'s cache: readable, and distinct per URL.
fn cache_name(url: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    url.hash(&mut hasher);
    let readable: String = url
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(40)
        .collect();
    PathBuf::from(format!("{readable}-{:016x}", hasher.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_trailers_of_the_last_paragraph() {
        let message = "Deploy shop 1.4.2 to prod\n\ngates passed: soak\n\nGreenlight-Release: shop-1-4-2\nGreenlight-Environment: prod\n";
        let trailers = trailers(message);
        assert_eq!(trailers["Greenlight-Release"], "shop-1-4-2");
        assert_eq!(trailers["Greenlight-Environment"], "prod");
        assert_eq!(trailers.len(), 2);
        assert!(super::trailers("one line: not a trailer paragraph with spaces in key").is_empty());
    }

    #[test]
    fn trusts_only_listed_host_keys() {
        use base64::Engine;
        let key = b"ssh-ed25519-key-bytes";
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        let known = format!(
            "git.example.com,10.0.0.1 ssh-ed25519 {encoded}\n[git.internal]:2222 ssh-ed25519 {encoded}\n"
        );
        assert!(known_hosts_trust(&known, "git.example.com", key));
        assert!(known_hosts_trust(&known, "git.internal", key));
        assert!(!known_hosts_trust(&known, "evil.example.com", key));
        assert!(!known_hosts_trust(
            &known,
            "git.example.com",
            b"another key"
        ));
    }
}
