//! A test Certificate Authority on real parts, for the revocation tests: made with `openssl` by
//! `scripts/testca.sh` in a temporary directory (root, intermediate, leaves, a delegated OCSP
//! responder; see the script's header for every file), answered over HTTP on 127.0.0.1 only by
//! an in-process server (one tokio thread per [`TestCa`]):
//!
//! - [`TestCa::crl_url`] and the rest of `DIR/www`: the CRLs (DER) and CA certificates (DER),
//!   at the URLs the leaves carry (CRL distribution point, AIA caIssuers);
//! - [`TestCa::crtsh_url`]: certificates the way crt.sh serves them: `?d=<id or SHA-256>` is the
//!   PEM, `?spkisha256=<hex>&output=json` the JSON list of certificates with that key (the
//!   precertificate and its final certificate are two entries, as in CT);
//! - [`TestCa::ocsp_url`] (in every leaf's AIA), [`TestCa::ocsp_delegated_url`],
//!   [`TestCa::ocsp_rogue_url`]: OCSP over POST and GET (RFC 6960 appendix A), each request
//!   answered by `openssl ocsp -index ... -reqin -respout` (`scripts/testca.sh respond`), signed
//!   by the intermediate itself, the delegated responder, or a responder of a CA nobody trusts.
//!   OpenSSL 3's own `ocsp -port` daemon listens on every interface, which a test server must not.
//!
//! Revoking ([`TestCa::revoke`]) is `openssl ca -revoke` with a CRLReason, then a new CRL and
//! the responder's copy of the database; [`TestCa::revoke_in`] publishes to one of them only
//! (the disagreement of a cached responder). [`TestCa::stop_ocsp`] closes the responders'
//! ports (connection refused); [`TestCa::start_ocsp`] opens them again. Dropping the `TestCa`
//! stops the server thread and removes the directory.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// One certificate of the test CA, as `scripts/testca.sh` listed it in `certs.tsv`.
#[derive(Clone, Debug)]
pub struct Cert {
    /// good, mate, expired, precert, final, other, unknown (see the script's header).
    pub name: String,
    /// Its id at the crt.sh-like endpoint.
    pub crtsh_id: u64,
    /// Hex, lower case, no colons, as crt.sh's JSON writes it ("1001").
    pub serial: String,
    /// SHA-256 of the DER certificate, hex, lower case.
    pub sha256: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, hex, lower case.
    pub spki_sha256: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SS` (crt.sh's JSON form).
    pub not_before: String,
    pub not_after: String,
    pub issuer_name: String,
    pub common_name: String,
    /// The PEM file.
    pub path: PathBuf,
}

impl Cert {
    pub fn pem(&self) -> String {
        std::fs::read_to_string(&self.path)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.path.display()))
    }
}

/// Who signs the answers of the responder at [`TestCa::ocsp_url`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// The intermediate itself (RSA).
    Issuer,
    /// The delegated responder (P-256, id-kp-OCSPSigning, signed by the intermediate).
    Delegated,
    /// A responder with id-kp-OCSPSigning from another CA: a valid signature nobody trusts.
    Rogue,
}

impl Signer {
    fn arg(self) -> &'static str {
        match self {
            Signer::Issuer => "issuer",
            Signer::Delegated => "delegated",
            Signer::Rogue => "rogue",
        }
    }
}

/// Where a revocation is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    Both,
    /// A new CRL only: the responder still says good.
    Crl,
    /// The responder only: the published CRL does not list it yet.
    Ocsp,
}

impl Publish {
    fn arg(self) -> &'static str {
        match self {
            Publish::Both => "both",
            Publish::Crl => "crl",
            Publish::Ocsp => "ocsp",
        }
    }
}

/// What the HTTP server shares with the test.
struct Shared {
    dir: PathBuf,
    certs: Vec<Cert>,
    /// The signer of the AIA responder.
    signer: Mutex<Signer>,
    /// When set, every crt.sh-like request (`/?...`) gets this status and no body, as crt.sh
    /// does when it is overloaded (429, 502, 503).
    crtsh_status: Mutex<Option<u16>>,
    /// Every request served: "<server> <METHOD> <path and query>".
    requests: Mutex<Vec<String>>,
}

/// The control side of the server thread.
struct Server {
    handle: tokio::runtime::Handle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    ocsp_tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One test CA and its loopback HTTP server. See the module documentation.
pub struct TestCa {
    dir: tempfile::TempDir,
    http_port: u16,
    ocsp_port: u16,
    ocsp_delegated_port: u16,
    ocsp_rogue_port: u16,
    shared: Arc<Shared>,
    server: Server,
}

impl TestCa {
    /// Make a fresh CA in a temporary directory and start its HTTP server and responders on
    /// free loopback ports. Panics, with the script's output, when it cannot.
    pub fn start() -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("cprwatch-testca-")
            .tempdir()
            .expect("temporary directory for the test CA");
        // The HTTP port is held from here on, so the certificates' URLs are ours for sure.
        let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let http_port = http.local_addr().expect("local addr").port();
        let (ocsp_port, ocsp_delegated_port, ocsp_rogue_port) =
            (super::free_port(), super::free_port(), super::free_port());
        super::server_script(
            "testca.sh",
            "start",
            dir.path(),
            &[
                ("HTTP_PORT", http_port.to_string().as_ref()),
                ("OCSP_PORT", ocsp_port.to_string().as_ref()),
                (
                    "OCSP_DELEGATED_PORT",
                    ocsp_delegated_port.to_string().as_ref(),
                ),
                ("OCSP_ROGUE_PORT", ocsp_rogue_port.to_string().as_ref()),
            ],
            String::new,
        );
        let shared = Arc::new(Shared {
            dir: dir.path().to_path_buf(),
            certs: read_manifest(&dir.path().join("certs.tsv")),
            signer: Mutex::new(Signer::Issuer),
            crtsh_status: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
        });

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime for the test CA's server");
        let handle = rt.handle().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("testca-http".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = rx.await;
                });
            })
            .expect("thread for the test CA's server");
        let mut ca = TestCa {
            dir,
            http_port,
            ocsp_port,
            ocsp_delegated_port,
            ocsp_rogue_port,
            shared,
            server: Server {
                handle,
                shutdown: Some(tx),
                thread: Some(thread),
                ocsp_tasks: Vec::new(),
            },
        };
        let app = Router::new()
            .fallback(http_files_and_crtsh)
            .with_state(ca.shared.clone());
        ca.serve(http, app);
        ca.start_ocsp();
        ca
    }

    /// Serve `app` on `listener` in the server thread; the task, for aborting.
    fn serve(&self, listener: std::net::TcpListener, app: Router) -> tokio::task::JoinHandle<()> {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        self.server.handle.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let _ = axum::serve(listener, app).await;
        })
    }

    /// Open the three responders' ports (again). Panics when a port has been taken meanwhile.
    pub fn start_ocsp(&mut self) {
        if !self.server.ocsp_tasks.is_empty() {
            return;
        }
        for (port, responder) in [
            (self.ocsp_port, None),
            (self.ocsp_delegated_port, Some(Signer::Delegated)),
            (self.ocsp_rogue_port, Some(Signer::Rogue)),
        ] {
            let listener = std::net::TcpListener::bind(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("bind the OCSP responder to 127.0.0.1:{port}: {e}"));
            let app = Router::new()
                .fallback(ocsp)
                .with_state((self.shared.clone(), responder));
            let task = self.serve(listener, app);
            self.server.ocsp_tasks.push(task);
        }
    }

    /// Close the responders' ports: a client now gets "connection refused".
    pub fn stop_ocsp(&mut self) {
        let tasks = std::mem::take(&mut self.server.ocsp_tasks);
        for t in &tasks {
            t.abort();
        }
        // Wait until each listener is really dropped, so the next connect is refused.
        for t in tasks {
            let _ = self.server.handle.block_on_task(t);
        }
    }

    /// Who signs the answers at [`TestCa::ocsp_url`] from now on (the intermediate at first).
    pub fn set_ocsp_signer(&self, signer: Signer) {
        *self.shared.signer.lock().unwrap() = signer;
    }

    /// Revoke SERIAL (hex, as in [`Cert::serial`]) with REASON (an `openssl ca -crl_reason`
    /// name: keyCompromise, superseded, cessationOfOperation, ...), publishing a new CRL and
    /// the responder's database.
    pub fn revoke(&self, serial: &str, reason: &str) {
        self.revoke_in(serial, reason, Publish::Both);
    }

    /// Revoke, publishing only where told.
    pub fn revoke_in(&self, serial: &str, reason: &str, publish: Publish) {
        self.script(&["revoke", serial, reason, publish.arg()]);
    }

    /// Publish the CA's database as it is now (after a [`TestCa::revoke_in`] to one side).
    pub fn publish(&self, publish: Publish) {
        self.script(&["publish", publish.arg()]);
    }

    /// When `Some`, every crt.sh-like request gets that HTTP status (429, 503...), no body.
    pub fn fail_crtsh(&self, status: Option<u16>) {
        *self.shared.crtsh_status.lock().unwrap() = status;
    }

    /// Every request served so far: "<http|ocsp|ocsp-delegated|ocsp-rogue> <METHOD> <path>".
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The certificate named NAME (good, mate, expired, precert, final, other, unknown).
    pub fn cert(&self, name: &str) -> &Cert {
        self.shared
            .certs
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| {
                let names: Vec<&str> = self.shared.certs.iter().map(|c| c.name.as_str()).collect();
                panic!("no test certificate {name:?}; there are {names:?}")
            })
    }

    pub fn certs(&self) -> &[Cert] {
        &self.shared.certs
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn root_pem(&self) -> PathBuf {
        self.dir.path().join("root.pem")
    }

    pub fn intermediate_pem(&self) -> PathBuf {
        self.dir.path().join("intermediate.pem")
    }

    /// The delegated responder's certificate (signed by the intermediate).
    pub fn delegated_responder_pem(&self) -> PathBuf {
        self.dir.path().join("ocsp-delegated.pem")
    }

    /// The root of the rogue responder (not part of this CA).
    pub fn rogue_root_pem(&self) -> PathBuf {
        self.dir.path().join("rogue-root.pem")
    }

    /// A leaf's private key: key-a (good, mate, expired), key-b (precert, final), key-c.
    pub fn key_pem(&self, key: &str) -> PathBuf {
        self.dir.path().join(format!("{key}.pem"))
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The responder in every leaf's AIA.
    pub fn ocsp_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ocsp_port)
    }

    pub fn ocsp_delegated_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ocsp_delegated_port)
    }

    pub fn ocsp_rogue_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ocsp_rogue_port)
    }

    /// The CRL distribution point of every leaf (DER).
    pub fn crl_url(&self) -> String {
        format!("http://127.0.0.1:{}/intermediate.crl", self.http_port)
    }

    /// The leaves' AIA caIssuers URL (DER).
    pub fn ca_issuers_url(&self) -> String {
        format!("http://127.0.0.1:{}/intermediate.crt", self.http_port)
    }

    /// The crt.sh-like base URL, for `[enrich] base_url`: `<base>?d=...`.
    pub fn crtsh_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http_port)
    }

    /// Every port this CA listens on.
    pub fn ports(&self) -> Vec<u16> {
        vec![
            self.http_port,
            self.ocsp_port,
            self.ocsp_delegated_port,
            self.ocsp_rogue_port,
        ]
    }

    /// What the responders' `openssl ocsp` said on stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ocsp.log")).unwrap_or_default()
    }

    fn script(&self, args: &[&str]) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testca.sh");
        let out = Command::new("bash")
            .arg(&path)
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| panic!("run scripts/testca.sh: {e}"));
        assert!(
            out.status.success(),
            "scripts/testca.sh {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        for t in &self.server.ocsp_tasks {
            t.abort();
        }
        if let Some(tx) = self.server.shutdown.take() {
            let _ = tx.send(());
        }
        // The runtime drops with the thread, and with it every listener and connection.
        if let Some(t) = self.server.thread.take() {
            let _ = t.join();
        }
    }
}

trait BlockOnTask {
    fn block_on_task(
        &self,
        task: tokio::task::JoinHandle<()>,
    ) -> Result<(), tokio::task::JoinError>;
}

impl BlockOnTask for tokio::runtime::Handle {
    /// Wait for a task of the server thread from the test's thread (sync or async alike).
    fn block_on_task(
        &self,
        task: tokio::task::JoinHandle<()>,
    ) -> Result<(), tokio::task::JoinError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.spawn(async move {
            let _ = tx.send(task.await);
        });
        rx.recv().unwrap_or(Ok(()))
    }
}

fn read_manifest(path: &Path) -> Vec<Cert> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 10, "bad line in {}: {line:?}", path.display());
            Cert {
                name: f[0].into(),
                crtsh_id: f[1].parse().expect("crt.sh id"),
                serial: f[2].into(),
                sha256: f[3].into(),
                spki_sha256: f[4].into(),
                not_before: f[5].into(),
                not_after: f[6].into(),
                issuer_name: f[7].into(),
                common_name: f[8].into(),
                path: PathBuf::from(f[9]),
            }
        })
        .collect()
}

/// `%XX` decoding (and `+` as space in queries), for the query and the OCSP GET path.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k, true) == name).then(|| percent_decode(v, true))
    })
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `DIR/www/<name>` by path, and the crt.sh-like queries at `/`.
async fn http_files_and_crtsh(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
) -> Response {
    shared
        .requests
        .lock()
        .unwrap()
        .push(format!("http {method} {uri}"));
    if method != Method::GET && method != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    let path = uri.path();
    if path != "/" {
        let name = &path[1..];
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_');
        let file = shared.dir.join("www").join(name);
        return match (ok, std::fs::read(&file)) {
            (true, Ok(bytes)) => {
                let ct = if name.ends_with(".crl") {
                    "application/pkix-crl"
                } else {
                    "application/pkix-cert"
                };
                respond(StatusCode::OK, ct, bytes)
            }
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        };
    }
    if let Some(status) = *shared.crtsh_status.lock().unwrap() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return respond(status, "text/plain", "");
    }
    if let Some(d) = query_param(&uri, "d") {
        let d = d.trim().to_ascii_lowercase();
        let found = shared
            .certs
            .iter()
            .find(|c| c.crtsh_id.to_string() == d || c.sha256 == d);
        return match found {
            Some(c) => respond(StatusCode::OK, "application/x-pem-file", c.pem()),
            None => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "Certificate not found\n",
            ),
        };
    }
    if let Some(spki) = query_param(&uri, "spkisha256") {
        if query_param(&uri, "output").as_deref() != Some("json") {
            return respond(StatusCode::BAD_REQUEST, "text/plain", "output=json only\n");
        }
        let spki = spki.trim().to_ascii_lowercase();
        let list: Vec<serde_json::Value> = shared
            .certs
            .iter()
            .filter(|c| c.spki_sha256 == spki)
            .map(|c| {
                serde_json::json!({
                    "issuer_ca_id": 1,
                    "issuer_name": c.issuer_name,
                    "common_name": c.common_name,
                    "name_value": c.common_name,
                    "id": c.crtsh_id,
                    "entry_timestamp": format!("{}.000", c.not_before),
                    "not_before": c.not_before,
                    "not_after": c.not_after,
                    "serial_number": c.serial,
                    "result_count": 1,
                })
            })
            .collect();
        return respond(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec(&list).expect("JSON"),
        );
    }
    respond(
        StatusCode::BAD_REQUEST,
        "text/plain",
        "this test server knows ?d=<id or sha256> and ?spkisha256=<hex>&output=json\n",
    )
}

/// OCSPResponse { responseStatus malformedRequest }: what a responder answers to a request it
/// cannot read (RFC 6960 4.2.1).
static MALFORMED_REQUEST: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];

/// One OCSP request, POST (the body) or GET (the base64 DER in the path, RFC 6960 A.1),
/// answered by `scripts/testca.sh respond`.
async fn ocsp(
    State((shared, fixed)): State<(Arc<Shared>, Option<Signer>)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let signer = fixed.unwrap_or_else(|| *shared.signer.lock().unwrap());
    let server = match fixed {
        None => "ocsp",
        Some(Signer::Delegated) => "ocsp-delegated",
        Some(_) => "ocsp-rogue",
    };
    shared
        .requests
        .lock()
        .unwrap()
        .push(format!("{server} {method} {}", uri.path()));
    let request = if method == Method::POST {
        body.to_vec()
    } else if method == Method::GET {
        let b64 = percent_decode(uri.path().trim_start_matches('/'), false);
        match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Ok(der) => der,
            Err(_) => {
                return respond(
                    StatusCode::OK,
                    "application/ocsp-response",
                    &MALFORMED_REQUEST[..],
                );
            }
        }
    } else {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET or POST\n",
        );
    };
    let dir = shared.dir.clone();
    let answer = tokio::task::spawn_blocking(move || run_responder(&dir, signer, &request))
        .await
        .expect("responder task");
    match answer {
        Some(der) => respond(StatusCode::OK, "application/ocsp-response", der),
        None => respond(
            StatusCode::OK,
            "application/ocsp-response",
            &MALFORMED_REQUEST[..],
        ),
    }
}

/// `scripts/testca.sh respond DIR SIGNER` with the request on stdin; its stderr goes to
/// DIR/ocsp.log. None when openssl could not answer (a request it cannot parse).
fn run_responder(dir: &Path, signer: Signer, request: &[u8]) -> Option<Vec<u8>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testca.sh");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ocsp.log"))
        .expect("open ocsp.log");
    let mut child = Command::new("bash")
        .arg(script)
        .arg("respond")
        .arg(dir)
        .arg(signer.arg())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("run scripts/testca.sh respond");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(request);
    drop(stdin);
    let out = child.wait_with_output().expect("wait for openssl ocsp");
    (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
}
