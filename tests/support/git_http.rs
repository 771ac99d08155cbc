//! Git's own smart HTTP server (`git http-backend`, run as a CGI program) behind HTTP
//! basic authentication, the way a Git host takes a token over https (without the TLS,
//! which is libgit2's and OpenSSL's), for the GitOps tests.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
};

/// `git http-backend` behind basic authentication, serving the bare repositories of a
/// directory (a `GitServer`'s) at `http://127.0.0.1:<port>/<name>.git`.
pub struct GitHttp {
    pub port: u16,
    /// Each request as `(method, path, status)`.
    pub requests: Arc<Mutex<Vec<(String, String, u16)>>>,
}

impl GitHttp {
    /// The URL of the repository `envs.git`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/envs.git", self.port)
    }

    /// The statuses answered so far.
    pub fn statuses(&self) -> Vec<u16> {
        self.requests.lock().unwrap().iter().map(|r| r.2).collect()
    }
}

impl GitHttp {
    /// Serves the bare repositories in `root` over HTTP to `username` with password
    /// `token` (any other request gets 401 and a basic-auth challenge), pushes included,
    /// on its own thread for the rest of the test.
    pub fn start(root: &Path, username: &str, token: &str) -> Self {
        use base64::Engine;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"))
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (root, user, log) = (root.to_owned(), username.to_owned(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, user, expected, log) =
                    (root.clone(), user.clone(), expected.clone(), log.clone());
                std::thread::spawn(move || {
                    if let Some(served) = serve_one(stream, &root, &user, &expected) {
                        log.lock().unwrap().push(served);
                    }
                });
            }
        });
        GitHttp { port, requests }
    }
}

/// Answers one request on `stream` (then closes it): 401 without the expected
/// `Authorization`, else whatever `git http-backend` answers. `None` for a broken request.
fn serve_one(
    stream: TcpStream,
    root: &Path,
    user: &str,
    expected: &str,
) -> Option<(String, String, u16)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = header("content-length") {
        body.resize(length.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut stream = stream;
    if header("authorization") != Some(expected) {
        stream
            .write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .ok()?;
        return Some((method, path.to_owned(), 401));
    }
    let mut backend = Command::new("git");
    backend
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", root)
        // An authenticated user may push (http-backend's receive-pack default).
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(encoding) = header("content-encoding") {
        backend.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let mut child = backend.spawn().ok()?;
    let mut stdin = child.stdin.take()?;
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output().ok()?;
    let _ = writer.join();
    // CGI: headers (`Status:` among them), a blank line, the body.
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })?;
    let (cgi_headers, body) = (
        String::from_utf8_lossy(&out[..split.0]).into_owned(),
        &out[split.1..],
    );
    let mut status = 200;
    let mut response = String::new();
    for header in cgi_headers.lines() {
        match header.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().split(' ').next()?.parse().ok()?;
            }
            _ => response.push_str(&format!("{header}\r\n")),
        }
    }
    let head = format!(
        "HTTP/1.1 {status} {}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    Some((method, path.to_owned(), status))
}
