//! A real Git server on loopback for the GitOps tests: Debian's `git daemon` serving bare
//! repositories over git:// with pushes enabled, and a work clone to change them the way
//! a person (or a second writer) would, with the `git` command.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A `git daemon` and the bare repositories it serves.
pub struct GitServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    daemon: Option<Child>,
}

/// Runs `git` in `dir` as a person, and returns its output; panics on failure (a broken
/// test setup, not the code under test).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Jane Doe")
        .env("GIT_AUTHOR_EMAIL", "jane@example.com")
        .env("GIT_COMMITTER_NAME", "Jane Doe")
        .env("GIT_COMMITTER_EMAIL", "jane@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl GitServer {
    /// A server with a bare repository `envs.git` whose branch `main` holds `files`
    /// (path, text), committed by a person.
    pub fn start(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("envs.git");
        git(
            dir.path(),
            &[
                "init",
                "--bare",
                "--initial-branch=main",
                bare.to_str().unwrap(),
            ],
        );
        let mut server = Self {
            dir,
            port: 0,
            daemon: None,
        };
        let work = server.clone_work("seed");
        for (path, text) in files {
            server.write(&work, path, text);
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "environments"]);
        git(&work, &["push", "-q", "origin", "main"]);
        server.port = free_port();
        server.run();
        server
    }

    /// The repository's URL.
    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/envs.git", self.port)
    }

    /// A fresh work clone (through the file system, which works while the daemon is down).
    pub fn clone_work(&self, name: &str) -> PathBuf {
        let work = self.dir.path().join(name);
        let _ = std::fs::remove_dir_all(&work);
        let bare = self.dir.path().join("envs.git");
        git(
            self.dir.path(),
            &[
                "clone",
                "-q",
                bare.to_str().unwrap(),
                work.to_str().unwrap(),
            ],
        );
        work
    }

    /// Writes a file in a work clone.
    pub fn write(&self, work: &Path, path: &str, text: &str) {
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    /// Commits `files` to `main` as a person, in a fresh clone; the new head.
    pub fn commit_as_person(&self, files: &[(&str, &str)], message: &str) -> String {
        let work = self.clone_work("person");
        for (path, text) in files {
            self.write(&work, path, text);
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", message]);
        git(&work, &["push", "-q", "origin", "main"]);
        git(&work, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// The file at `path` on `main`.
    pub fn show(&self, path: &str) -> String {
        let bare = self.dir.path().join("envs.git");
        git(&bare, &["show", &format!("main:{path}")])
    }

    /// `git log` of `main`: one line per commit, `%H %an: %s`.
    pub fn log(&self) -> Vec<String> {
        let bare = self.dir.path().join("envs.git");
        git(&bare, &["log", "--format=%H %an: %s", "main"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The full message of a commit.
    pub fn message(&self, commit: &str) -> String {
        let bare = self.dir.path().join("envs.git");
        git(&bare, &["log", "-1", "--format=%B", commit])
    }

    /// Stops the daemon: the repository cannot be reached.
    pub fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }

    /// Starts the daemon (again) on the same port.
    pub fn run(&mut self) {
        // git-daemon itself, not `git daemon`, which would run it as a child that a kill
        // of the parent leaves serving.
        let exec_path = git(self.dir.path(), &["--exec-path"]);
        let daemon = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args([
                "--export-all",
                "--enable=receive-pack",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={}", self.port),
                &format!("--base-path={}", self.dir.path().display()),
                self.dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        self.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
