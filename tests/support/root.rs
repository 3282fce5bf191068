//! A scratch copy of the repository's root (adapters, routes, schemas, transforms) for tests
//! that run routes and write files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the shipped adapters point by default: the sandbox on its default port.
pub const DEFAULT_SANDBOX: &str = "http://127.0.0.1:8090/";

/// Where a copied root's adapters point instead: the discard port, where nothing listens,
/// so a test never talks to a sandbox someone else runs on the default port (a test that
/// wants a system sets `KNUT_ADAPTER_<NAME>_URL` for the `knut` it starts).
pub const NO_SYSTEM: &str = "http://127.0.0.1:9/";

/// The auth schemes the shipped routes name, configured for tests that run the shipped root
/// with the sandbox off (with it on, a development instance trusts the sandbox's issuer
/// for them): bearer tokens of an issuer nobody has, so these routes refuse every request.
/// OeP's pushes are taken with basic authentication: this user, and [`OEP_PASSWORD`] from
/// the file `oep-password` that [`copy_root`] writes.
pub const SHIPPED_AUTH_TOML: &str = "[http.auth.operators]\ntype = \"bearer_jwt\"\n\
    jwks_url = \"http://127.0.0.1:9/jwks\"\nissuer = \"nobody\"\n\
    [http.auth.casedata]\ntype = \"bearer_jwt\"\n\
    jwks_url = \"http://127.0.0.1:9/jwks\"\nissuer = \"nobody\"\n\
    [http.auth.skolresekollen]\ntype = \"bearer_jwt\"\n\
    jwks_url = \"http://127.0.0.1:9/jwks\"\nissuer = \"nobody\"\n\
    [http.auth.residents]\ntype = \"bearer_jwt\"\n\
    jwks_url = \"http://127.0.0.1:9/jwks\"\nissuer = \"nobody\"\n\
    [http.auth.staff]\ntype = \"bearer_jwt\"\n\
    jwks_url = \"http://127.0.0.1:9/jwks\"\nissuer = \"nobody\"\n\
    [http.auth.oep]\ntype = \"basic\"\nusername = \"oep-test\"\npassword_file = \"oep-password\"\n";

/// The test password of OeP's pushes (in `<root>/oep-password`).
pub const OEP_PASSWORD: &str = "fiktivt-oep-losenord";

/// The `Authorization` value of OeP's pushes in tests.
pub fn oep_authorization() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("oep-test:{OEP_PASSWORD}"))
    )
}

/// What an in-process development system of a test needs besides its own settings: the
/// development profile, and the external plane's listeners on free ports.
/// (Tests send faster than any client may: the rate limit is lifted.)
pub const DEV_TOML: &str = "profile = \"development\"\n\
    [http.rate_limit]\nper_second = 100000\nburst = 100000\n\
    [external]\nhttp_bind = \"127.0.0.1:0\"\nadmin_bind = \"127.0.0.1:0\"\n";

/// [`SHIPPED_AUTH_TOML`] as `KNUT__…` environment variables.
pub const SHIPPED_AUTH_ENV: &[(&str, &str)] = &[
    ("KNUT__HTTP__AUTH__OPERATORS__TYPE", "bearer_jwt"),
    (
        "KNUT__HTTP__AUTH__OPERATORS__JWKS_URL",
        "http://127.0.0.1:9/jwks",
    ),
    ("KNUT__HTTP__AUTH__OPERATORS__ISSUER", "nobody"),
    ("KNUT__HTTP__AUTH__CASEDATA__TYPE", "bearer_jwt"),
    (
        "KNUT__HTTP__AUTH__CASEDATA__JWKS_URL",
        "http://127.0.0.1:9/jwks",
    ),
    ("KNUT__HTTP__AUTH__CASEDATA__ISSUER", "nobody"),
    ("KNUT__HTTP__AUTH__SKOLRESEKOLLEN__TYPE", "bearer_jwt"),
    (
        "KNUT__HTTP__AUTH__SKOLRESEKOLLEN__JWKS_URL",
        "http://127.0.0.1:9/jwks",
    ),
    ("KNUT__HTTP__AUTH__SKOLRESEKOLLEN__ISSUER", "nobody"),
    ("KNUT__HTTP__AUTH__RESIDENTS__TYPE", "bearer_jwt"),
    (
        "KNUT__HTTP__AUTH__RESIDENTS__JWKS_URL",
        "http://127.0.0.1:9/jwks",
    ),
    ("KNUT__HTTP__AUTH__RESIDENTS__ISSUER", "nobody"),
    ("KNUT__HTTP__AUTH__STAFF__TYPE", "bearer_jwt"),
    (
        "KNUT__HTTP__AUTH__STAFF__JWKS_URL",
        "http://127.0.0.1:9/jwks",
    ),
    ("KNUT__HTTP__AUTH__STAFF__ISSUER", "nobody"),
    ("KNUT__HTTP__AUTH__OEP__TYPE", "basic"),
    ("KNUT__HTTP__AUTH__OEP__USERNAME", "oep-test"),
    ("KNUT__HTTP__AUTH__OEP__PASSWORD_FILE", "oep-password"),
];

/// A temporary root holding a copy of the repository's config folders, its adapters
/// pointing at [`NO_SYSTEM`].
pub fn copy_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in [
        "adapters",
        "fragments",
        "routes",
        "schemas",
        "settings",
        "transforms",
    ] {
        copy_dir(&repo().join(sub), &dir.path().join(sub));
    }
    for e in std::fs::read_dir(dir.path().join("adapters")).expect("adapters") {
        let p = e.expect("entry").path();
        let text = std::fs::read_to_string(&p).expect("read adapter");
        std::fs::write(&p, text.replace(DEFAULT_SANDBOX, NO_SYSTEM)).expect("write adapter");
    }
    std::fs::write(dir.path().join("oep-password"), OEP_PASSWORD).expect("write oep-password");
    dir
}

/// The admin credential a development instance over `root` wrote at its start.
pub fn admin_token(root: &Path) -> String {
    std::fs::read_to_string(root.join("data/admin-token"))
        .map(|t| t.trim().to_string())
        .expect("a development knut writes data/admin-token at start")
}

/// Copy a folder recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// A port nobody listens on right now, never one this process handed out before, and
/// outside the kernel's ephemeral range: a port taken from that range (bind to port 0,
/// close, hand the number on) can be given to any outgoing connection or other listener
/// before the process it was meant for binds it ("Address already in use").
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    // Below the ephemeral range (Linux's default starts at 32768) and above the well-known
    // services' ports this machine runs (RabbitMQ's 25672 is skipped by the bind check).
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        });
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for i in 0..SPAN {
        let port = FIRST + (start + i * 13) % SPAN;
        if ephemeral.is_some_and(|(lo, hi)| (lo..=hi).contains(&port)) {
            continue;
        }
        let port = port as u16;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    // The ephemeral range covers ours (a host set up so): any free port will have to do.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if given.insert(port) {
            return port;
        }
    }
}

/// Wait until `f` is true (checked every 50 ms) or panic after `secs` seconds.
pub async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
