//! The posture checks: what `knut run` (and `knut check`) refuse before anything starts.
//!
//! **Production** (the default profile) fails closed. Refused, each with the fix:
//! - the sandbox (`sandbox.enabled = true`): it simulates the municipality's systems and
//!   its test issuer signs any claims;
//! - the embedded broker (no `broker.url`): in memory, so an accepted message is lost at a
//!   restart;
//! - external routes without the external plane's own broker URL, or with the internal
//!   plane's (same vhost and user: planes separated by convention only), and bridge routes
//!   without `external.bridge_url`;
//! - an adapter whose base URL points at the sandbox (the shipped files' development
//!   default): it must be set to the real system (`KNUT_ADAPTER_<NAME>_URL`);
//! - an auth scheme that trusts the sandbox's test issuer;
//! - `auth: none` without a reason, and `auth: { none: … }` on a route that
//!   `http.unauthenticated` does not list (and a listed id that is no such route).
//! - a route with an `audit` step without the access audit's key (`[audit] key_env`,
//!   default `KNUT_AUDIT_KEY`); a key shorter than 32 bytes is refused in every profile.
//!
//! A scheme a route names but the configuration lacks is refused in every profile but
//! development-with-sandbox, by the file checks ([`crate::runtime::catalog::check`]).
//!
//! **The sandbox**, in any profile, runs only where it cannot be mistaken for the real
//! thing: every listener on loopback, and no broker or store on another host (a RabbitMQ or
//! PostgreSQL on 127.0.0.1 for development and tests is fine).

use std::net::SocketAddr;

use crate::adapter::{Adapter, is_loopback_host, points_at_sandbox, url_env_var};
use crate::config::{AuthScheme, Config, Profile, SANDBOX_ISSUER};
use crate::route::load::LoadedRoute;
use crate::route::model::{From, Plane};

/// Every reason the configuration, routes and adapters must not start, each naming the fix,
/// for an instance running every plane (`knut check`, `knut run`).
pub fn problems<'a>(
    config: &Config,
    routes: &[LoadedRoute],
    adapters: impl IntoIterator<Item = &'a Adapter>,
) -> Vec<String> {
    problems_for(
        config,
        routes,
        &[Plane::Internal, Plane::External],
        adapters,
    )
}

/// Like [`problems`], for an instance running only `planes` (`knut run --plane`): what the
/// other plane's routes need is not asked of it. `routes` are all the root's routes.
pub fn problems_for<'a>(
    config: &Config,
    routes: &[LoadedRoute],
    planes: &[Plane],
    adapters: impl IntoIterator<Item = &'a Adapter>,
) -> Vec<String> {
    problems_in(config, routes, planes, adapters, &process_env)
}

/// Like [`problems_for`], with the secrets' environment variables read through `env` (for
/// tests; the others read the process's environment).
pub fn problems_in<'a>(
    config: &Config,
    routes: &[LoadedRoute],
    planes: &[Plane],
    adapters: impl IntoIterator<Item = &'a Adapter>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    if config.sandbox_enabled() {
        sandbox_beside_real_things(config, &mut out);
    }
    if config.profile == Profile::Production {
        production(config, routes, planes, adapters, &mut out);
    }
    if let Err(e) = audit_key(config, routes, planes, env) {
        out.push(e);
    }
    out
}

/// A variable of the process's environment, `None` when unset, empty or not Unicode.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The routes of `planes` that keep the access audit: write it (an `audit` step) or read it
/// (`audit_lookup`), in any branch — both hash people with the audit key.
pub fn audit_routes<'a>(routes: &'a [LoadedRoute], planes: &[Plane]) -> Vec<&'a str> {
    routes
        .iter()
        .filter(|r| planes.contains(&r.route.plane))
        .filter(|r| {
            crate::route::check::steps_with_paths(&r.route)
                .iter()
                .any(|(_, s)| matches!(s.kind(), "audit" | "audit_lookup"))
        })
        .map(|r| r.route.route.as_str())
        .collect()
}

/// The access audit's key, from the variable `[audit] key_env` names: `None` when unset —
/// refused in production when a route of `planes` writes the audit (fail closed); a key
/// that is too short is refused in every profile. The texts never hold the key.
pub fn audit_key(
    config: &Config,
    routes: &[LoadedRoute],
    planes: &[Plane],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<crate::store::AuditKey>, String> {
    let var = &config.audit.key_env;
    match env(var) {
        Some(secret) => crate::store::AuditKey::new(secret.as_bytes())
            .map(Some)
            .map_err(|e| format!("`[audit] key_env`: {var}: {e}")),
        None => {
            let writers = audit_routes(routes, planes);
            if config.profile == Profile::Production && !writers.is_empty() {
                Err(format!(
                    "production: route(s) {} write the access audit, which stores people as \
                     hashes under a secret key, and {var} (`[audit] key_env`) is not set; set it \
                     to at least {} random bytes (e.g. `openssl rand -base64 48`), kept as \
                     secret as the database password",
                    writers
                        .iter()
                        .map(|r| format!("`{r}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    crate::store::MIN_KEY_LEN
                ))
            } else {
                Ok(None)
            }
        }
    }
}

fn production<'a>(
    config: &Config,
    all: &[LoadedRoute],
    planes: &[Plane],
    adapters: impl IntoIterator<Item = &'a Adapter>,
    out: &mut Vec<String>,
) {
    let running: Vec<&LoadedRoute> = all
        .iter()
        .filter(|r| planes.contains(&r.route.plane))
        .collect();
    let routes = running.as_slice();
    let fix_dev = "(for development, start with `knut run --dev`)";
    if config.sandbox.enabled == Some(true) {
        out.push(format!(
            "production: `sandbox.enabled = true` would simulate the municipality's systems and \
             trust the sandbox's test issuer; remove the key {fix_dev}"
        ));
    }
    let internal = planes.contains(&Plane::Internal);
    if internal && config.broker.url.as_deref().is_none_or(str::is_empty) {
        out.push(format!(
            "production: no `broker.url`, so the embedded in-memory broker would run and lose \
             every accepted message at a restart; set KNUT__BROKER__URL=amqps://<user>:<password>@<host>/<vhost> {fix_dev}"
        ));
    }
    let external = routes.iter().any(|r| r.route.plane == Plane::External);
    let bridges = routes.iter().any(|r| is_bridge(r));
    let (int_url, ext_url, bridge_url) = (
        config.broker.url.as_deref(),
        config.external.broker_url.as_deref(),
        config.external.bridge_url.as_deref(),
    );
    if external && ext_url.is_none() {
        out.push(
            "production: routes of the external plane need their own broker connection; set \
             KNUT__EXTERNAL__BROKER_URL=amqps://<external user>:<password>@<host>/<external vhost> \
             (`knut topology` lists the vhosts, users and permissions)"
                .into(),
        );
    }
    if (external || bridges)
        && let (Some(ext), Some(int)) = (ext_url, int_url)
    {
        for shared in shares(ext, int) {
            out.push(format!(
                "production: `external.broker_url` names the same {shared} as `broker.url`; the \
                 planes are separated by vhost and by credentials: give the external plane its \
                 own vhost and its own user (`knut topology` lists them)"
            ));
        }
    }
    if bridges {
        match bridge_url {
            None => out.push(
                "production: bridge routes read the external plane with the internal plane's user; \
                 set KNUT__EXTERNAL__BRIDGE_URL=amqps://<internal user>:<password>@<host>/<external vhost>"
                    .into(),
            ),
            Some(bridge) => {
                if ext_url.is_some_and(|ext| amqp_user(bridge) == amqp_user(ext)) {
                    out.push(
                        "production: `external.bridge_url` uses the external plane's user; a bridge \
                         reads with the internal plane's user, permitted on the bridges' queues only"
                            .into(),
                    );
                }
                if int_url.is_some_and(|int| amqp_vhost(bridge) == amqp_vhost(int)) {
                    out.push(
                        "production: `external.bridge_url` names the internal vhost; it must name \
                         the external plane's vhost, where the bridges' queues are"
                            .into(),
                    );
                }
            }
        }
    }
    for a in adapters {
        if points_at_sandbox(&a.base_url) {
            out.push(format!(
                "production: adapter `{}` ({}) points at the sandbox ({}); set {} to the real \
                 system's URL",
                a.spec.adapter,
                a.file.display(),
                a.base_url,
                url_env_var(&a.spec.adapter)
            ));
        }
    }
    let named: Vec<&str> = routes
        .iter()
        .filter_map(|r| match &r.route.from {
            From::Http(h) => h.auth.scheme(),
            _ => None,
        })
        .collect();
    for (name, scheme) in &config.http.auth {
        let AuthScheme::BearerJwt {
            issuer,
            jwks_url,
            audience,
            ..
        } = scheme
        else {
            continue;
        };
        if issuer == SANDBOX_ISSUER || jwks_url.as_deref().is_some_and(points_at_sandbox) {
            out.push(format!(
                "production: [http.auth.{name}] trusts the sandbox's test issuer, which signs any \
                 claims; name the municipality's identity provider instead"
            ));
            continue;
        }
        if !named.contains(&name.as_str()) {
            continue;
        }
        if audience.as_deref().is_none_or(str::is_empty) {
            out.push(format!(
                "production: [http.auth.{name}] names no `audience`, so it takes a token the \
                 issuer made for any other service; set `audience` to what the identity provider \
                 puts in `aud` for Knutpunkt"
            ));
        }
        if jwks_url
            .as_deref()
            .is_some_and(|u| !u.starts_with("https://"))
        {
            out.push(format!(
                "production: [http.auth.{name}] fetches its keys over plain HTTP; give an \
                 https:// `jwks_url` (or a `jwks_file`)"
            ));
        }
    }
    if let Some(jwt) = &config.admin.jwt {
        if jwt.issuer == SANDBOX_ISSUER || jwt.jwks_url.as_deref().is_some_and(points_at_sandbox) {
            out.push(
                "production: [admin.jwt] trusts the sandbox's test issuer; name the \
                 municipality's identity provider instead"
                    .into(),
            );
        } else if jwt
            .jwks_url
            .as_deref()
            .is_some_and(|u| !u.starts_with("https://"))
        {
            out.push(
                "production: [admin.jwt] fetches its keys over plain HTTP; give an https:// \
                 `jwks_url` (or a `jwks_file`)"
                    .into(),
            );
        }
    }
    let mut unauthenticated = Vec::new();
    for lr in all {
        if !planes.contains(&lr.route.plane) {
            if let From::Http(h) = &lr.route.from
                && h.auth.unauthenticated().is_some()
            {
                unauthenticated.push(lr.route.route.as_str());
            }
            continue;
        }
        let From::Http(h) = &lr.route.from else {
            continue;
        };
        let id = &lr.route.route;
        match h.auth.unauthenticated() {
            None => {}
            Some(None) => out.push(format!(
                "production: route `{id}` ({}) has `auth: none`; give it an auth scheme, or if it \
                 truly needs none, say why in the route (`auth: {{ none: \"<reason>\" }}`) and \
                 allow it in knut.toml (`[http] unauthenticated = [\"{id}\"]`)",
                lr.file.display()
            )),
            Some(Some(_)) => {
                unauthenticated.push(id.as_str());
                if !config.http.unauthenticated.iter().any(|r| r == id) {
                    out.push(format!(
                        "production: route `{id}` ({}) takes requests without credentials; if \
                         that is intended, allow it in knut.toml (`[http] unauthenticated = \
                         [\"{id}\"]`), else give it an auth scheme",
                        lr.file.display()
                    ));
                }
            }
        }
    }
    for id in &config.http.unauthenticated {
        if !unauthenticated.contains(&id.as_str()) {
            out.push(format!(
                "production: `http.unauthenticated` lists `{id}`, which is not a route with \
                 `auth: {{ none: … }}` here; remove it from the list"
            ));
        }
    }
}

/// A bridge: an internal route reading the external plane.
pub fn is_bridge(lr: &LoadedRoute) -> bool {
    lr.route.is_bridge()
}

fn sandbox_beside_real_things(config: &Config, out: &mut Vec<String>) {
    let why = "the sandbox (simulated systems and a test issuer that signs any claims) runs \
               only on a developer's machine";
    let binds: [(&str, SocketAddr); 5] = [
        ("sandbox.bind", config.sandbox.bind),
        ("http.bind", config.http.bind),
        ("admin.bind", config.admin.bind),
        ("external.http_bind", config.external.http_bind),
        ("external.admin_bind", config.external.admin_bind),
    ];
    for (key, addr) in binds {
        if !addr.ip().is_loopback() {
            out.push(format!(
                "`{key}` listens on {addr}, beyond this machine, while the sandbox runs: {why}; \
                 bind it to 127.0.0.1, or turn the sandbox off (`sandbox.enabled = false`)"
            ));
        }
    }
    let urls = [
        ("broker.url", config.broker.url.as_deref()),
        ("external.broker_url", config.external.broker_url.as_deref()),
        ("external.bridge_url", config.external.bridge_url.as_deref()),
        ("store.url", config.store.url.as_deref()),
    ];
    for (key, url) in urls {
        if let Some(url) = url
            && !is_local_url(url)
        {
            out.push(format!(
                "`{key}` names another host while the sandbox runs: {why}; use a broker or store \
                 on 127.0.0.1, or turn the sandbox off (`sandbox.enabled = false`)"
            ));
        }
    }
}

/// Whether a broker or store URL is on this machine: a loopback host, a Unix socket or a
/// SQLite file.
fn is_local_url(url: &str) -> bool {
    if url.starts_with("sqlite:") {
        return true;
    }
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    match u.host_str() {
        None | Some("") => true,
        Some(h) => is_loopback_host(h),
    }
}

/// The user an AMQP URL names (lapin's default when it names none).
fn amqp_user(url: &str) -> Option<String> {
    crate::broker::amqp::definitions::user_of(url)
}

/// The vhost an AMQP URL names.
fn amqp_vhost(url: &str) -> Option<String> {
    crate::broker::amqp::definitions::vhost_of(url).ok()
}

/// What two AMQP URLs share that separated planes must not: `vhost`, `user`.
fn shares(a: &str, b: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if amqp_vhost(a).is_some() && amqp_vhost(a) == amqp_vhost(b) {
        out.push("vhost");
    }
    if amqp_user(a).is_some() && amqp_user(a) == amqp_user(b) {
        out.push("user");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::load::load_routes;
    use std::path::Path;

    fn config(toml: &str) -> Config {
        Config::from_toml_str(toml).expect("config")
    }

    fn shipped() -> (Vec<LoadedRoute>, Vec<Adapter>) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let routes = load_routes(root).expect("routes");
        let adapters = crate::adapter::load_adapters(root, None)
            .expect("adapters")
            .into_values()
            .collect();
        (routes, adapters)
    }

    #[test]
    fn production_refuses_each_fail_open_setting_naming_the_fix() {
        let (routes, adapters) = shipped();
        let cfg = config("[sandbox]\nenabled = true\n");
        let found = problems(&cfg, &routes, &adapters).join("\n");
        for needle in [
            "remove the key",
            "KNUT__BROKER__URL",
            "KNUT_ADAPTER_OEP_URL",
            "KNUT__EXTERNAL__BROKER_URL",
        ] {
            assert!(found.contains(needle), "{needle} missing in:\n{found}");
        }
    }

    #[test]
    fn the_planes_must_not_share_a_vhost_or_a_user() {
        let (routes, _) = shipped();
        let with = |ext: &str, bridge: &str| {
            config(&format!(
                "[broker]\nurl = \"amqps://knut-int:p@mq:5671/int\"\n[external]\nbroker_url = \"{ext}\"\nbridge_url = \"{bridge}\"\n"
            ))
        };
        let fine = with("amqps://knut-ext:p@mq/ext", "amqps://knut-int:p@mq/ext");
        let found = problems(&fine, &routes, []).join("\n");
        assert!(
            !found.contains("same") && !found.contains("bridge_url"),
            "{found}"
        );
        // The internal user in the external plane's URL (another vhost): refused.
        let found = problems(
            &with("amqps://knut-int:p@mq/ext", "amqps://knut-int:p@mq/ext"),
            &routes,
            [],
        )
        .join("\n");
        assert!(found.contains("the same user"), "{found}");
        // The same vhost, another user, the port written out or not: refused.
        let found = problems(
            &with("amqps://knut-ext:p@mq/int", "amqps://knut-int:p@mq/ext"),
            &routes,
            [],
        )
        .join("\n");
        assert!(found.contains("the same vhost"), "{found}");
        // The bridge with the external user, or on the internal vhost: refused.
        let found = problems(
            &with("amqps://knut-ext:p@mq/ext", "amqps://knut-ext:p@mq/ext"),
            &routes,
            [],
        )
        .join("\n");
        assert!(found.contains("uses the external plane's user"), "{found}");
        let found = problems(
            &with("amqps://knut-ext:p@mq/ext", "amqps://knut-int:p@mq/int"),
            &routes,
            [],
        )
        .join("\n");
        assert!(found.contains("names the internal vhost"), "{found}");
    }

    #[test]
    fn an_external_plane_process_is_not_asked_for_the_internal_broker() {
        let (routes, _) = shipped();
        let cfg = config(
            "[http.auth.oep]\ntype = \"basic\"\nusername = \"oep\"\npassword_env = \"P\"\n[external]\nbroker_url = \"amqps://knut-ext:p@mq/ext\"\n",
        );
        // (With the access audit's key, for the routes that write the audit.)
        let key = |n: &str| (n == "KNUT_AUDIT_KEY").then(|| "k".repeat(48));
        let found = problems_in(&cfg, &routes, &[Plane::External], [], &key).join("\n");
        assert!(!found.contains("KNUT__BROKER__URL"), "{found}");
        assert!(found.is_empty(), "{found}");
        let found = problems(&cfg, &routes, []).join("\n");
        assert!(found.contains("KNUT__BROKER__URL"), "{found}");
    }

    #[test]
    fn production_wants_an_audience_and_https_keys_for_the_schemes_in_use() {
        let route = crate::route::load::load_route_str(
            Path::new("routes/portal.yaml"),
            "route: portal\nfrom:\n  http:\n    path: /p\n    auth: portal\nsteps: []\n",
        )
        .expect("route");
        let cfg = config(
            "[broker]\nurl = \"amqps://knut@rabbit/school\"\n[http.auth.portal]\ntype = \"bearer_jwt\"\njwks_url = \"http://idp.example/jwks\"\nissuer = \"https://idp.example\"\n[http.auth.unused]\ntype = \"bearer_jwt\"\njwks_url = \"http://idp.example/jwks\"\nissuer = \"x\"\n",
        );
        let found = problems(&cfg, std::slice::from_ref(&route), []).join("\n");
        assert!(
            found.contains("[http.auth.portal] names no `audience`"),
            "{found}"
        );
        assert!(
            found.contains("[http.auth.portal] fetches its keys over plain HTTP"),
            "{found}"
        );
        assert!(!found.contains("unused"), "{found}");
    }

    #[test]
    fn production_refuses_a_scheme_trusting_the_sandbox_issuer() {
        let cfg = config(
            "[broker]\nurl = \"amqps://knut@rabbit/school\"\n[http.auth.portal]\ntype = \"bearer_jwt\"\njwks_url = \"https://idp.example/jwks\"\nissuer = \"knut-sandbox-idp\"\n[admin.jwt]\njwks_url = \"http://127.0.0.1:8090/sandbox/idp/jwks\"\nissuer = \"x\"\naudience = \"a\"\n",
        );
        let found = problems(&cfg, &[], []).join("\n");
        assert!(
            found.contains("[http.auth.portal] trusts the sandbox's test issuer"),
            "{found}"
        );
        assert!(
            found.contains("[admin.jwt] trusts the sandbox's test issuer"),
            "{found}"
        );
    }

    #[test]
    fn development_allows_the_sandbox_on_loopback_only() {
        let (routes, adapters) = shipped();
        let dev = config("profile = \"development\"\n");
        assert!(problems(&dev, &routes, &adapters).is_empty());
        let beside = config(
            "profile = \"development\"\n[broker]\nurl = \"amqp://u@rabbit.internal/x\"\n[admin]\nbind = \"0.0.0.0:9090\"\n",
        );
        let found = problems(&beside, &routes, &adapters).join("\n");
        assert!(found.contains("`broker.url` names another host"), "{found}");
        assert!(
            found.contains("`admin.bind` listens on 0.0.0.0:9090"),
            "{found}"
        );
        // Local RabbitMQ and PostgreSQL are fine.
        let local = config(
            "profile = \"development\"\n[broker]\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n[store]\nurl = \"postgres://postgres@localhost/test\"\n",
        );
        assert!(problems(&local, &routes, &adapters).is_empty());
        // The sandbox off: a development instance may reach other hosts.
        let off = config(
            "profile = \"development\"\n[sandbox]\nenabled = false\n[broker]\nurl = \"amqp://u@rabbit.internal/x\"\n",
        );
        assert!(problems(&off, &routes, &adapters).is_empty());
    }

    #[test]
    fn unauthenticated_routes_need_a_reason_and_the_configuration() {
        let route = |auth: &str| {
            crate::route::load::load_route_str(
                Path::new("routes/open.yaml"),
                &format!(
                    "route: open\nfrom:\n  http:\n    path: /open\n    auth: {auth}\nsteps: []\n"
                ),
            )
            .expect("route")
        };
        let base = "[broker]\nurl = \"amqps://knut@rabbit/school\"\n";
        let bare = problems(&config(base), &[route("none")], []).join("\n");
        assert!(bare.contains("auth: { none: \"<reason>\" }"), "{bare}");
        let reasoned = route("{ none: \"opening hours, public\" }");
        let unlisted = problems(&config(base), std::slice::from_ref(&reasoned), []).join("\n");
        assert!(
            unlisted.contains("unauthenticated = [\"open\"]"),
            "{unlisted}"
        );
        let listed = format!("{base}[http]\nunauthenticated = [\"open\"]\n");
        assert!(problems(&config(&listed), &[reasoned], []).is_empty());
        let stray = format!("{base}[http]\nunauthenticated = [\"gone\"]\n");
        let found = problems(&config(&stray), &[], []).join("\n");
        assert!(found.contains("lists `gone`"), "{found}");
    }

    #[test]
    fn a_route_that_only_reads_the_access_audit_needs_its_key_too() {
        // audit_lookup hashes the people it asks about with the same key: without it the
        // route could only fail at its first message.
        let report = crate::route::load::load_route_str(
            Path::new("routes/report.yaml"),
            "route: report\nfrom:\n  queue: { exchange: x, keys: [k] }\nsteps:\n  - audit_lookup: { each: '.pairs[]', into: views }\n",
        )
        .expect("route");
        let routes = std::slice::from_ref(&report);
        let all = [Plane::Internal, Plane::External];
        let base = "[broker]\nurl = \"amqps://knut@rabbit/school\"\n";
        assert_eq!(audit_routes(routes, &all), ["report"]);
        let found = problems_in(&config(base), routes, &all, [], &|_: &str| None).join("\n");
        assert!(
            found.contains("`report`") && found.contains("KNUT_AUDIT_KEY"),
            "{found}"
        );
    }

    #[test]
    fn the_access_audit_needs_its_key_in_production_and_a_long_one_everywhere() {
        let audit = crate::route::load::load_route_str(
            Path::new("routes/view.yaml"),
            "route: view\nfrom:\n  queue: { exchange: x, keys: [k] }\nsteps:\n  - choice:\n      when: []\n      otherwise:\n        - audit: { action: '\"login\"', actor: .who }\n",
        )
        .expect("route");
        let routes = std::slice::from_ref(&audit);
        let all = [Plane::Internal, Plane::External];
        let base = "[broker]\nurl = \"amqps://knut@rabbit/school\"\n";
        let unset = |_: &str| None;
        let found = problems_in(&config(base), routes, &all, [], &unset).join("\n");
        assert!(
            found.contains("`view` write the access audit") && found.contains("KNUT_AUDIT_KEY"),
            "{found}"
        );
        assert!(audit_key(&config(base), routes, &all, &unset).is_err());
        // Without a route that writes it, nothing is asked.
        assert!(problems_in(&config(base), &[], &all, [], &unset).is_empty());
        let key = |n: &str| (n == "KNUT_AUDIT_KEY").then(|| "k".repeat(48));
        assert!(problems_in(&config(base), routes, &all, [], &key).is_empty());
        let key = audit_key(&config(base), routes, &all, &key)
            .unwrap()
            .unwrap();
        assert!(!key.is_development());
        // The public development key's text is no secret: refused as the key.
        let public = |n: &str| {
            (n == "KNUT_AUDIT_KEY")
                .then(|| "knutpunkt development access-audit key: not secret".to_string())
        };
        let found = problems_in(&config(base), routes, &all, [], &public).join("\n");
        assert!(found.contains("public development key"), "{found}");
        // The variable `[audit] key_env` names.
        let named = format!("{base}[audit]\nkey_env = \"GUARDIAN_AUDIT_KEY\"\n");
        let only_default = |n: &str| (n == "KNUT_AUDIT_KEY").then(|| "k".repeat(48));
        let found = problems_in(&config(&named), routes, &all, [], &only_default).join("\n");
        assert!(found.contains("GUARDIAN_AUDIT_KEY"), "{found}");
        // A short key is refused in every profile, never repeated.
        let dev = "profile = \"development\"\n[sandbox]\nenabled = false\n";
        let short = |_: &str| Some("hunter2".to_string());
        let found = problems_in(&config(dev), routes, &all, [], &short).join("\n");
        assert!(found.contains("7 bytes"), "{found}");
        assert!(!found.contains("hunter2"), "{found}");
        // Development without a key: nothing refused (the runtime uses the development key).
        assert!(problems_in(&config(dev), routes, &all, [], &unset).is_empty());
        assert!(
            audit_key(&config(dev), routes, &all, &unset)
                .unwrap()
                .is_none()
        );
    }
}
