//! The graph of routes: where their messages come from (HTTP paths, folders, timers,
//! exchanges, polled adapters) and where they go (exchanges, adapters, folders). One model
//! ([`Graph`], made by [`model`]) drawn two ways: a Mermaid flowchart (`knut graph`,
//! [`mermaid`]) and an SVG laid out in layers ([`svg`], the web console's pictures).

mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::check::steps_with_paths;
use super::load::LoadedRoute;
use super::model::{From, Plane};
use crate::step::kind::Edges;

pub use svg::svg;

/// A `flowchart LR` of `routes`: a node per route, exchange, adapter, HTTP path, folder and
/// timer; edges endpoint → route (a polled adapter → route), route → exchange (routing key),
/// exchange → route (binding key), route → adapter (operation), route → folder. The routes
/// of the external plane, their HTTP paths and exchanges are drawn inside a subgraph
/// `external plane`; a bridge's edge from it is labelled `bridge`. The same routes give
/// the same text.
pub fn mermaid(routes: &[LoadedRoute]) -> String {
    model(routes).mermaid()
}

/// The graph of `routes` (see [`mermaid`] for what it holds). The same routes, in any
/// order, give the same graph.
pub fn model(routes: &[LoadedRoute]) -> Graph {
    let mut g = Graph::default();
    for r in routes {
        let route = g.node("r", &r.route.route, Shape::Route);
        let external = r.route.plane == Plane::External;
        if external {
            g.external.insert(route.clone());
        }
        match &r.route.from {
            From::Http(h) => {
                let n = g.node("h", &h.path, Shape::Http);
                if external {
                    g.external.insert(n.clone());
                }
                let methods: Vec<&str> = h.methods.iter().map(|m| m.as_str()).collect();
                g.edge(&n, &route, &methods.join(", "));
            }
            From::Queue(q) => {
                let x = g.node("x", &q.exchange, Shape::Exchange);
                if r.route.queue_plane() == Plane::External {
                    g.external.insert(x.clone());
                }
                for key in &q.keys {
                    if r.route.is_bridge() {
                        g.edge(&x, &route, &format!("bridge: {key}"));
                    } else {
                        g.edge(&x, &route, key);
                    }
                }
            }
            From::File(f) => {
                let d = g.node("d", &f.dir, Shape::Folder);
                g.edge(&d, &route, &f.pattern);
            }
            From::Timer(t) => {
                let n = g.node("t", &t.cron, Shape::Timer);
                g.edge(&n, &route, "");
            }
            From::Poll(p) => {
                // The adapter is polled: its list (and fetch) operations feed the route.
                let a = g.node("a", &p.adapter, Shape::Adapter);
                let ops = std::iter::once(p.list.as_str())
                    .chain(p.fetch.as_deref())
                    .collect::<Vec<_>>()
                    .join(", ");
                g.edge(&a, &route, &format!("poll {ops}"));
            }
        }
        for (_, step) in steps_with_paths(&r.route) {
            step.behaviour().edges(&mut StepEdges {
                g: &mut g,
                route: &route,
                external,
            });
        }
    }
    g
}

/// The edges of one route's steps, drawn from its node.
struct StepEdges<'a> {
    g: &'a mut Graph,
    route: &'a str,
    external: bool,
}

impl Edges for StepEdges<'_> {
    fn adapter(&mut self, adapter: &str, operation: &str) {
        let a = self.g.node("a", adapter, Shape::Adapter);
        self.g.edge(self.route, &a, operation);
    }

    fn exchange(&mut self, exchange: &str, key: &str) {
        let x = self.g.node("x", exchange, Shape::Exchange);
        if self.external {
            self.g.external.insert(x.clone());
        }
        self.g.edge(self.route, &x, key);
    }

    fn folder(&mut self, dir: &str) {
        let d = self.g.node("d", dir, Shape::Folder);
        self.g.edge(self.route, &d, "");
    }
}

/// What a node stands for, and so how it is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A route (a rectangle).
    Route,
    /// An exchange (a hexagon).
    Exchange,
    /// An adapter, i.e. a system (a rectangle with side bars).
    Adapter,
    /// An HTTP path (a stadium).
    Http,
    /// A folder (a parallelogram).
    Folder,
    /// A timer (a circle).
    Timer,
}

impl Shape {
    /// What the shape stands for, in words (`route`, `exchange`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Route => "route",
            Shape::Exchange => "exchange",
            Shape::Adapter => "adapter",
            Shape::Http => "HTTP path",
            Shape::Folder => "folder",
            Shape::Timer => "timer",
        }
    }
}

/// One node: a route, exchange, adapter, HTTP path, folder or timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its name (a route id, an exchange's or adapter's name, a path, a folder, a cron).
    pub name: String,
    /// What it is.
    pub shape: Shape,
}

/// One edge, with its label (an operation, a routing or binding key, HTTP methods).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The id of the node it leaves.
    pub from: String,
    /// The id of the node it reaches.
    pub to: String,
    /// Its label, empty when it has none.
    pub label: String,
}

/// Routes and what they connect: nodes by id (a kind letter and the name, so distinct
/// names give distinct ids), edges, and which nodes belong to the external plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// The nodes by id, in id order.
    pub nodes: BTreeMap<String, Node>,
    /// The edges, in order.
    pub edges: BTreeSet<Edge>,
    /// The ids of the nodes of the external plane.
    pub external: BTreeSet<String>,
}

impl Graph {
    /// Declare (once) the node of `kind` named `name`; returns its id.
    fn node(&mut self, kind: &str, name: &str, shape: Shape) -> String {
        let id = format!("{kind}_{}", node_id(name));
        self.nodes.entry(id.clone()).or_insert_with(|| Node {
            name: name.to_string(),
            shape,
        });
        id
    }

    fn edge(&mut self, from: &str, to: &str, label: &str) {
        self.edges.insert(Edge {
            from: from.to_string(),
            to: to.to_string(),
            label: label.to_string(),
        });
    }

    /// The id of route `route`'s node.
    pub fn route_id(route: &str) -> String {
        format!("r_{}", node_id(route))
    }

    /// Route `route`, the nodes it is joined to and the edges between them: what one
    /// route's page draws. Empty when there is no such route.
    pub fn around(&self, route: &str) -> Graph {
        let id = Graph::route_id(route);
        let mut g = Graph::default();
        if !self.nodes.contains_key(&id) {
            return g;
        }
        let edges: Vec<&Edge> = self
            .edges
            .iter()
            .filter(|e| e.from == id || e.to == id)
            .collect();
        let keep: BTreeSet<&str> = edges
            .iter()
            .flat_map(|e| [e.from.as_str(), e.to.as_str()])
            .chain([id.as_str()])
            .collect();
        for k in keep {
            if let Some(n) = self.nodes.get(k) {
                g.nodes.insert(k.to_string(), n.clone());
                if self.external.contains(k) {
                    g.external.insert(k.to_string());
                }
            }
        }
        g.edges = edges.into_iter().cloned().collect();
        g
    }

    /// The adapters route `route` calls or polls, by name, in order.
    pub fn adapters_of(&self, route: &str) -> Vec<String> {
        let id = Graph::route_id(route);
        let names: BTreeSet<&str> = self
            .edges
            .iter()
            .filter_map(|e| {
                let other = if e.from == id {
                    &e.to
                } else if e.to == id {
                    &e.from
                } else {
                    return None;
                };
                self.nodes
                    .get(other)
                    .filter(|n| n.shape == Shape::Adapter)
                    .map(|n| n.name.as_str())
            })
            .collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// The Mermaid `flowchart LR` of this graph.
    pub fn mermaid(&self) -> String {
        let decl = |id: &str, n: &Node| {
            let label = label(&n.name);
            match n.shape {
                Shape::Route => format!("{id}[\"{label}\"]"),
                Shape::Exchange => format!("{id}{{{{\"{label}\"}}}}"),
                Shape::Adapter => format!("{id}[[\"{label}\"]]"),
                Shape::Http => format!("{id}([\"{label}\"])"),
                Shape::Folder => format!("{id}[/\"{label}\"/]"),
                Shape::Timer => format!("{id}((\"{label}\"))"),
            }
        };
        let mut out = String::from("flowchart LR\n");
        for (id, n) in &self.nodes {
            if !self.external.contains(id) {
                let _ = writeln!(out, "    {}", decl(id, n));
            }
        }
        if !self.external.is_empty() {
            out.push_str("    subgraph external[\"external plane\"]\n");
            for (id, n) in &self.nodes {
                if self.external.contains(id) {
                    let _ = writeln!(out, "        {}", decl(id, n));
                }
            }
            out.push_str("    end\n");
        }
        for e in &self.edges {
            if e.label.is_empty() {
                let _ = writeln!(out, "    {} --> {}", e.from, e.to);
            } else {
                let _ = writeln!(out, "    {} -->|\"{}\"| {}", e.from, label(&e.label), e.to);
            }
        }
        out
    }
}

/// A Mermaid node id for `name`: ASCII letters and digits are kept, every other character
/// becomes `_<hex>_`, so distinct names give distinct ids.
fn node_id(name: &str) -> String {
    let mut id = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else {
            let _ = write!(id, "_{:x}_", c as u32);
        }
    }
    id
}

/// `text` escaped for a quoted Mermaid label (entity codes for `#`, `"`, `<`, `>`, `` ` ``;
/// line breaks become spaces).
fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push_str("#96;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::route::load::load_route_str;

    fn route(text: &str) -> LoadedRoute {
        load_route_str(Path::new("routes/x.yaml"), text).unwrap()
    }

    #[test]
    fn flowchart_of_endpoints_routes_exchanges_adapters_and_folders() {
        let routes = [
            route(
                "route: placement-change\nfrom:\n  http: {path: /api/v1/placement-changes, auth: none}\nsteps:\n  - enrich: {adapter: elevregister, operation: get-student, into: s}\n  - choice:\n      when:\n        - jq: .x\n          steps:\n            - to: {adapter: elevregister, operation: update-placement}\n  - publish: {exchange: school.events, key: placement.changed}\n",
            ),
            route(
                "route: archive\nfrom:\n  queue: {exchange: school.events, keys: ['placement.*', 'grade.#']}\nsteps:\n  - to: {file: {dir: out/archive}}\n",
            ),
            route("route: nightly\nfrom:\n  timer: {cron: '0 6 * * 1-5'}\n"),
            route("route: csn\nfrom:\n  file: {dir: in/csn, pattern: '*.csv'}\n"),
            route(
                "route: oep-poll\nfrom:\n  poll: {adapter: elevregister, list: list, fetch: get, every: 1m, items: '.[]', id: .id}\n",
            ),
        ];
        let expected = r#"flowchart LR
    a_elevregister[["elevregister"]]
    d_in_2f_csn[/"in/csn"/]
    d_out_2f_archive[/"out/archive"/]
    h__2f_api_2f_v1_2f_placement_2d_changes(["/api/v1/placement-changes"])
    r_archive["archive"]
    r_csn["csn"]
    r_nightly["nightly"]
    r_oep_2d_poll["oep-poll"]
    r_placement_2d_change["placement-change"]
    t_0_20_6_20__2a__20__2a__20_1_2d_5(("0 6 * * 1-5"))
    x_school_2e_events{{"school.events"}}
    a_elevregister -->|"poll list, get"| r_oep_2d_poll
    d_in_2f_csn -->|"*.csv"| r_csn
    h__2f_api_2f_v1_2f_placement_2d_changes -->|"POST"| r_placement_2d_change
    r_archive --> d_out_2f_archive
    r_placement_2d_change -->|"get-student"| a_elevregister
    r_placement_2d_change -->|"update-placement"| a_elevregister
    r_placement_2d_change -->|"placement.changed"| x_school_2e_events
    t_0_20_6_20__2a__20__2a__20_1_2d_5 --> r_nightly
    x_school_2e_events -->|"grade.#35;"| r_archive
    x_school_2e_events -->|"placement.*"| r_archive
"#;
        assert_eq!(mermaid(&routes), expected);
        // Deterministic whatever the order of the routes.
        let mut reversed = routes.to_vec();
        reversed.reverse();
        assert_eq!(mermaid(&reversed), expected);
        assert_eq!(mermaid(&[]), "flowchart LR\n");
    }

    #[test]
    fn a_verify_signature_from_an_adapter_is_an_edge_a_key_file_is_not() {
        let routes = [route(
            "route: sign\nfrom:\n  queue: {exchange: g, keys: [c]}\nsteps:\n  - verify_signature: {jws: .s, payload: .d, keys: {adapter: elevregister, operation: signing-keys}}\n  - verify_signature: {jws: .s, payload: .d, keys: {file: keys.json}}\n",
        )];
        let out = mermaid(&routes);
        assert!(
            out.contains("r_sign -->|\"signing-keys\"| a_elevregister"),
            "{out}"
        );
        assert!(!out.contains("keys.json"), "{out}");
    }

    #[test]
    fn one_route_and_its_neighbours_and_its_adapters() {
        let routes = [
            route(
                "route: a\nfrom:\n  http: {path: /in/a, auth: none}\nsteps:\n  - enrich: {adapter: elevregister, operation: get-student, into: s}\n  - publish: {exchange: ev, key: k}\n",
            ),
            route(
                "route: b\nfrom:\n  queue: {exchange: ev, keys: [k]}\nsteps:\n  - to: {adapter: messaging, operation: send}\n",
            ),
        ];
        let g = model(&routes);
        assert_eq!(g.adapters_of("a"), ["elevregister"]);
        assert_eq!(g.adapters_of("b"), ["messaging"]);
        assert!(g.adapters_of("nope").is_empty());
        let around = g.around("a");
        let names: Vec<&str> = around.nodes.values().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["elevregister", "/in/a", "a", "ev"]);
        assert_eq!(around.edges.len(), 3);
        assert!(g.around("nope").nodes.is_empty());
        // Both drawings come from the one model.
        assert_eq!(g.mermaid(), mermaid(&routes));
        let svg = svg(&g, "routes", &|_| None);
        for name in ["elevregister", "messaging", "/in/a", "ev"] {
            assert!(svg.contains(name), "{name}: {svg}");
        }
    }

    #[test]
    fn ids_are_distinct_and_labels_escaped() {
        assert_ne!(node_id("a-b"), node_id("a_b"));
        assert!(
            node_id("ä \"x\"")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        );
        assert_eq!(
            label("a \"b\" <c> #d `e`"),
            "a #quot;b#quot; #lt;c#gt; #35;d #96;e#96;"
        );
    }

    #[test]
    fn the_external_plane_is_a_subgraph_and_a_bridge_is_labelled() {
        let routes = [
            route(
                "route: push\nplane: external\nfrom:\n  http: {path: /in/push, auth: oep}\nsteps:\n  - publish: {exchange: pushed, key: p}\n",
            ),
            route(
                "route: inward\nfrom:\n  queue: {exchange: pushed, keys: [p], plane: external}\nsteps:\n  - validate: {schema: s}\n  - publish: {exchange: inside, key: p}\n",
            ),
        ];
        let out = mermaid(&routes);
        let (outside, sub) = out.split_once("subgraph external").expect(&out);
        let inside_sub = sub.split_once("    end").expect(&out).0;
        for n in ["r_push", "h__2f_in_2f_push", "x_pushed"] {
            assert!(
                inside_sub.contains(n),
                "{n} in the external subgraph: {out}"
            );
        }
        assert!(
            outside.contains("r_inward") && outside.contains("x_inside"),
            "{out}"
        );
        assert!(
            out.contains("x_pushed -->|\"bridge: p\"| r_inward"),
            "{out}"
        );
    }
}
