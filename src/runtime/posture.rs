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
//!
//! A scheme a route names but the configuration lacks is refused in every profile but
//! development-with-sandbox, by the file checks ([`crate::resources::check`]).
//!
//! **The sandbox**, in any profile, runs only where it cannot be mistaken for the real
//! thing: every listener on loopback, and no broker or store on another host (a RabbitMQ or
//! PostgreSQL on 127.0.0.1 for development and tests is fine).

use std::net::SocketAddr;

use crate::adapter::{Adapter, is_loopback_host, points_at_sandbox, url_env_var};
use crate::config::{AuthScheme, Config, Profile, SANDBOX_ISSUER};
use crate::route::load::LoadedRoute;
use crate::route::model::{From, Plane};

/// Every reason the configuration, routes and adapters must not start, each naming the fix.
/// `routes` are the routes this instance would run.
pub fn problems<'a>(
    config: &Config,
    routes: &[LoadedRoute],
    adapters: impl IntoIterator<Item = &'a Adapter>,
) -> Vec<String> {
    let mut out = Vec::new();
    if config.sandbox_enabled() {
        sandbox_beside_real_things(config, &mut out);
    }
    if config.profile == Profile::Production {
        production(config, routes, adapters, &mut out);
    }
    out
}

fn production<'a>(
    config: &Config,
    routes: &[LoadedRoute],
    adapters: impl IntoIterator<Item = &'a Adapter>,
    out: &mut Vec<String>,
) {
    let fix_dev = "(for development, start with `knut run --dev`)";
    if config.sandbox.enabled == Some(true) {
        out.push(format!(
            "production: `sandbox.enabled = true` would simulate the municipality's systems and \
             trust the sandbox's test issuer; remove the key {fix_dev}"
        ));
    }
    if config.broker.url.as_deref().is_none_or(str::is_empty) {
        out.push(format!(
            "production: no `broker.url`, so the embedded in-memory broker would run and lose \
             every accepted message at a restart; set KNUT__BROKER__URL=amqps://<user>:<password>@<host>/<vhost> {fix_dev}"
        ));
    }
    let external = routes.iter().any(|r| r.route.plane == Plane::External);
    let bridges = routes.iter().any(is_bridge);
    if external {
        match (&config.external.broker_url, &config.broker.url) {
            (None, _) => out.push(
                "production: routes of the external plane need their own broker connection; set \
                 KNUT__EXTERNAL__BROKER_URL=amqps://<external user>:<password>@<host>/<external vhost> \
                 (`knut topology` lists the vhosts, users and permissions)"
                    .into(),
            ),
            (Some(ext), Some(int)) if same_vhost_and_user(ext, int) => out.push(
                "production: `external.broker_url` names the same vhost and user as `broker.url`; \
                 the planes must be separated by vhost and credentials: give the external plane \
                 its own vhost and user (`knut topology` lists them)"
                    .into(),
            ),
            _ => {}
        }
    }
    if bridges && config.external.bridge_url.is_none() {
        out.push(
            "production: bridge routes read the external plane with the internal plane's user; \
             set KNUT__EXTERNAL__BRIDGE_URL=amqps://<internal user>:<password>@<host>/<external vhost>"
                .into(),
        );
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
    for (name, scheme) in &config.http.auth {
        if let AuthScheme::BearerJwt {
            issuer, jwks_url, ..
        } = scheme
            && (issuer == SANDBOX_ISSUER || jwks_url.as_deref().is_some_and(points_at_sandbox))
        {
            out.push(format!(
                "production: [http.auth.{name}] trusts the sandbox's test issuer, which signs any \
                 claims; name the municipality's identity provider instead"
            ));
        }
    }
    if let Some(jwt) = &config.admin.jwt
        && (jwt.issuer == SANDBOX_ISSUER || jwt.jwks_url.as_deref().is_some_and(points_at_sandbox))
    {
        out.push(
            "production: [admin.jwt] trusts the sandbox's test issuer; name the municipality's \
             identity provider instead"
                .into(),
        );
    }
    let mut unauthenticated = Vec::new();
    for lr in routes {
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

/// Whether two AMQP URLs name the same vhost as the same user.
fn same_vhost_and_user(a: &str, b: &str) -> bool {
    let key = |url: &str| {
        reqwest::Url::parse(url).ok().map(|u| {
            (
                u.host_str().map(str::to_ascii_lowercase),
                u.port(),
                u.username().to_string(),
                crate::broker::amqp::definitions::vhost_of(url).unwrap_or_default(),
            )
        })
    };
    key(a).is_some() && key(a) == key(b)
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
}
