//! The route graph drawn as SVG, laid out in layers from left to right (a Sugiyama-style
//! layered layout, small enough to keep here): cycles broken by a depth-first search, each
//! node's layer the longest path to it, the order within a layer settled by a few sweeps of
//! the barycentre heuristic, edges drawn as curves from the right side of a node to the left
//! side of the next. Deterministic: the same graph gives the same text.
//!
//! The picture is accessible: the `<svg>` has a title and a description listing every edge
//! in words, each node a `<title>` saying what it is; nodes of the external plane are drawn
//! dashed (the legend says so).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{Graph, Node, Shape};

const FONT: f64 = 12.0;
/// The width of a character at [`FONT`], a little more than the average of a sans-serif.
const CHAR: f64 = 7.0;
const NODE_H: f64 = 34.0;
const PAD_X: f64 = 14.0;
const GAP_Y: f64 = 22.0;
const GAP_X: f64 = 110.0;
const MARGIN: f64 = 16.0;
/// Labels longer than this are cut (with `…`); the `<title>` keeps them whole.
const MAX_CHARS: usize = 40;
const SWEEPS: usize = 6;

/// The SVG of `g` titled `title`; `link` gives a node the address it links to (a route's
/// page), if any.
pub fn svg(g: &Graph, title: &str, link: &dyn Fn(&Node) -> Option<String>) -> String {
    let ids: Vec<&str> = g.nodes.keys().map(String::as_str).collect();
    let index: BTreeMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let n = ids.len();
    // Edges between known nodes, by index; self-loops are left out of the layout.
    let edges: Vec<(usize, usize, &str)> = g
        .edges
        .iter()
        .filter_map(|e| {
            Some((
                *index.get(e.from.as_str())?,
                *index.get(e.to.as_str())?,
                e.label.as_str(),
            ))
        })
        .collect();
    let dag = acyclic(n, &edges);
    let layer = layers(n, &dag);
    let order = ordering(n, &layer, &dag);

    // Sizes and positions.
    let label_of = |i: usize| short(&g.nodes[ids[i]].name);
    let width = |i: usize| {
        let chars = label_of(i).chars().count() as f64;
        let w = chars * CHAR + 2.0 * PAD_X;
        match g.nodes[ids[i]].shape {
            Shape::Exchange | Shape::Folder => w + 16.0,
            Shape::Adapter => w + 12.0,
            Shape::Timer => w.max(NODE_H),
            _ => w,
        }
    };
    let mut x = vec![0.0; n];
    let mut y = vec![0.0; n];
    let mut w = vec![0.0; n];
    let mut left = MARGIN;
    let mut height: f64 = 0.0;
    for column in &order {
        let col_w = column.iter().map(|&i| width(i)).fold(0.0, f64::max);
        let mut top = MARGIN + 18.0;
        for &i in column {
            w[i] = width(i);
            x[i] = left + (col_w - w[i]) / 2.0;
            y[i] = top;
            top += NODE_H + GAP_Y;
        }
        height = height.max(top);
        left += col_w + GAP_X;
    }
    let total_w = (left - GAP_X + MARGIN).max(200.0);
    let total_h = height.max(NODE_H + 2.0 * MARGIN) + 14.0;

    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"graph\" role=\"img\" \
         aria-labelledby=\"graph-title graph-desc\" viewBox=\"0 0 {tw:.0} {th:.0}\" \
         width=\"{tw:.0}\" height=\"{th:.0}\" font-family=\"system-ui, sans-serif\" font-size=\"{FONT}\">",
        tw = total_w,
        th = total_h,
    );
    let _ = write!(out, "<title id=\"graph-title\">{}</title>", esc(title));
    let mut desc = String::new();
    for e in &g.edges {
        let (Some(a), Some(b)) = (g.nodes.get(&e.from), g.nodes.get(&e.to)) else {
            continue;
        };
        let _ = write!(
            desc,
            "{} {} to {} {}{}. ",
            a.shape.as_str(),
            a.name,
            b.shape.as_str(),
            b.name,
            if e.label.is_empty() {
                String::new()
            } else {
                format!(" ({})", e.label)
            }
        );
    }
    let _ = write!(
        out,
        "<desc id=\"graph-desc\">{}</desc>",
        esc(desc.trim_end())
    );
    out.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>",
    );
    if !g.external.is_empty() {
        let _ = write!(
            out,
            "<g class=\"legend\"><rect x=\"{MARGIN}\" y=\"4\" width=\"22\" height=\"10\" fill=\"none\" \
             stroke=\"#444\" stroke-dasharray=\"4 3\"/><text x=\"{:.0}\" y=\"13\" fill=\"#222\">external plane</text></g>",
            MARGIN + 28.0
        );
    }

    // Edges first, so nodes are drawn over them.
    out.push_str("<g class=\"edges\" fill=\"none\" stroke=\"#444\" stroke-width=\"1.3\">");
    let mut labels = String::new();
    for &(a, b, l) in &edges {
        if a == b {
            continue;
        }
        let (x1, y1) = (x[a] + w[a], y[a] + NODE_H / 2.0);
        let (x2, y2) = (x[b], y[b] + NODE_H / 2.0);
        let path = if x2 > x1 {
            let dx = (x2 - x1) / 2.0;
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                x1 + dx,
                x2 - dx
            )
        } else {
            // Backwards (a cycle): round below both nodes.
            let low = y1.max(y2) + NODE_H;
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{low:.1} {:.1},{low:.1} {x2:.1},{y2:.1}",
                x1 + 60.0,
                x2 - 60.0
            )
        };
        let _ = write!(out, "<path d=\"{path}\" marker-end=\"url(#arrow)\"/>");
        if !l.is_empty() {
            let (lx, ly) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0 - 4.0);
            let _ = write!(
                labels,
                "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\">{}</text>",
                esc(&short(l))
            );
        }
    }
    out.push_str("</g>");

    out.push_str("<g class=\"nodes\">");
    for i in 0..n {
        let node = &g.nodes[ids[i]];
        let external = g.external.contains(ids[i]);
        let (nx, ny, nw, h) = (x[i], y[i], w[i], NODE_H);
        let dash = if external {
            " stroke-dasharray=\"5 3\""
        } else {
            ""
        };
        let (fill, stroke) = match node.shape {
            Shape::Route => ("#e8f0fe", "#1a4f9c"),
            Shape::Exchange => ("#fff4e0", "#8a5a00"),
            Shape::Adapter => ("#e9f6ec", "#1e6b34"),
            _ => ("#f3f3f3", "#555"),
        };
        let style = format!("fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"{dash}");
        let shape = match node.shape {
            Shape::Route => {
                format!(
                    "<rect x=\"{nx:.1}\" y=\"{ny:.1}\" width=\"{nw:.1}\" height=\"{h}\" rx=\"3\" {style}/>"
                )
            }
            Shape::Http => format!(
                "<rect x=\"{nx:.1}\" y=\"{ny:.1}\" width=\"{nw:.1}\" height=\"{h}\" rx=\"{:.1}\" {style}/>",
                h / 2.0
            ),
            Shape::Adapter => format!(
                "<rect x=\"{nx:.1}\" y=\"{ny:.1}\" width=\"{nw:.1}\" height=\"{h}\" {style}/>\
                 <path d=\"M{:.1},{ny:.1} v{h} M{:.1},{ny:.1} v{h}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>",
                nx + 6.0,
                nx + nw - 6.0
            ),
            Shape::Exchange => format!(
                "<polygon points=\"{:.1},{ny:.1} {:.1},{ny:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {nx:.1},{:.1}\" {style}/>",
                nx + 10.0,
                nx + nw - 10.0,
                nx + nw,
                ny + h / 2.0,
                nx + nw - 10.0,
                ny + h,
                nx + 10.0,
                ny + h,
                ny + h / 2.0
            ),
            Shape::Folder => format!(
                "<polygon points=\"{:.1},{ny:.1} {:.1},{ny:.1} {:.1},{:.1} {nx:.1},{:.1}\" {style}/>",
                nx + 10.0,
                nx + nw,
                nx + nw - 10.0,
                ny + h,
                ny + h
            ),
            Shape::Timer => format!(
                "<ellipse cx=\"{:.1}\" cy=\"{:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" {style}/>",
                nx + nw / 2.0,
                ny + h / 2.0,
                nw / 2.0,
                h / 2.0
            ),
        };
        let text = format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#111\">{}</text>",
            nx + nw / 2.0,
            ny + h / 2.0 + FONT / 3.0,
            esc(&label_of(i))
        );
        let what = format!(
            "{} {}{}",
            node.shape.as_str(),
            node.name,
            if external { " (external plane)" } else { "" }
        );
        let body = format!("<title>{}</title>{shape}{text}", esc(&what));
        match link(node) {
            Some(href) => {
                let _ = write!(
                    out,
                    "<a href=\"{}\" class=\"node {}\">{body}</a>",
                    esc(&href),
                    class(node.shape)
                );
            }
            None => {
                let _ = write!(out, "<g class=\"node {}\">{body}</g>", class(node.shape));
            }
        }
    }
    out.push_str("</g>");
    let _ = write!(
        out,
        "<g class=\"labels\" fill=\"#222\" font-size=\"11\" paint-order=\"stroke\" stroke=\"#fff\" stroke-width=\"3\">{labels}</g>"
    );
    out.push_str("</svg>");
    out
}

fn class(shape: Shape) -> &'static str {
    match shape {
        Shape::Route => "route",
        Shape::Exchange => "exchange",
        Shape::Adapter => "adapter",
        Shape::Http => "http",
        Shape::Folder => "folder",
        Shape::Timer => "timer",
    }
}

/// The edges with those that close a cycle turned round (found by a depth-first search
/// from the nodes in order), self-loops left out: a graph without cycles.
fn acyclic(n: usize, edges: &[(usize, usize, &str)]) -> Vec<(usize, usize)> {
    let mut out: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b, _) in edges {
        if a != b {
            next[a].push(b);
        }
    }
    for v in &mut next {
        v.sort_unstable();
        v.dedup();
    }
    // 0 unseen, 1 on the stack, 2 done.
    let mut state = vec![0u8; n];
    // Sources first, so the layout reads from where messages come from.
    let mut starts: Vec<usize> = (0..n).collect();
    let has_in: BTreeSet<usize> = edges
        .iter()
        .filter(|(a, b, _)| a != b)
        .map(|e| e.1)
        .collect();
    starts.sort_by_key(|i| (has_in.contains(i), *i));
    for s in starts {
        if state[s] != 0 {
            continue;
        }
        // An explicit stack: (node, the index of its next successor to visit).
        let mut stack = vec![(s, 0usize)];
        state[s] = 1;
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            if let Some(&u) = next[v].get(*k) {
                *k += 1;
                match state[u] {
                    0 => {
                        out.insert((v, u));
                        state[u] = 1;
                        stack.push((u, 0));
                    }
                    1 => {
                        out.insert((u, v));
                    }
                    _ => {
                        out.insert((v, u));
                    }
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    out.into_iter().filter(|(a, b)| a != b).collect()
}

/// Each node's layer: the longest path to it from a source.
fn layers(n: usize, dag: &[(usize, usize)]) -> Vec<usize> {
    let mut indeg = vec![0usize; n];
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in dag {
        indeg[b] += 1;
        next[a].push(b);
    }
    let mut layer = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).rev().collect();
    while let Some(v) = ready.pop() {
        for &u in &next[v] {
            layer[u] = layer[u].max(layer[v] + 1);
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.push(u);
            }
        }
    }
    layer
}

/// The nodes of each layer in drawing order (top to bottom), by the barycentre of their
/// neighbours in the layer before (sweeping right) and after (sweeping left).
fn ordering(n: usize, layer: &[usize], dag: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let depth = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for i in 0..n {
        order[layer[i]].push(i);
    }
    let mut pos = vec![0.0f64; n];
    let place = |order: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for column in order {
            for (k, &i) in column.iter().enumerate() {
                pos[i] = k as f64;
            }
        }
    };
    place(&order, &mut pos);
    for sweep in 0..SWEEPS {
        let forward = sweep % 2 == 0;
        let columns: Vec<usize> = if forward {
            (1..depth).collect()
        } else {
            (0..depth.saturating_sub(1)).rev().collect()
        };
        for c in columns {
            let mut keyed: Vec<(f64, usize)> = order[c]
                .iter()
                .map(|&i| {
                    let near: Vec<f64> = dag
                        .iter()
                        .filter_map(|&(a, b)| match forward {
                            true if b == i => Some(pos[a]),
                            false if a == i => Some(pos[b]),
                            _ => None,
                        })
                        .collect();
                    let key = if near.is_empty() {
                        pos[i]
                    } else {
                        near.iter().sum::<f64>() / near.len() as f64
                    };
                    (key, i)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            order[c] = keyed.into_iter().map(|(_, i)| i).collect();
            for (k, &i) in order[c].iter().enumerate() {
                pos[i] = k as f64;
            }
        }
    }
    order
}

/// `text` cut to [`MAX_CHARS`] characters.
fn short(text: &str) -> String {
    if text.chars().count() <= MAX_CHARS {
        return text.replace(['\n', '\r'], " ");
    }
    let cut: String = text.chars().take(MAX_CHARS - 1).collect();
    format!("{}…", cut.replace(['\n', '\r'], " "))
}

/// `text` escaped for SVG (XML) text and attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str, &str)]) -> Graph {
        let mut g = Graph::default();
        for (a, b, l) in edges {
            let a = g.node("r", a, Shape::Route);
            let b = g.node("a", b, Shape::Adapter);
            g.edge(&a, &b, l);
        }
        g
    }

    #[test]
    fn cycles_are_broken_and_layers_follow_the_edges() {
        // a → b → c → a, c → d.
        let edges = [(0, 1, ""), (1, 2, ""), (2, 0, ""), (2, 3, "")];
        let dag = acyclic(4, &edges);
        assert_eq!(dag.len(), 4);
        let layer = layers(4, &dag);
        for &(a, b) in &dag {
            assert!(layer[a] < layer[b], "{dag:?} {layer:?}");
        }
        assert_eq!(layer[0], 0);
        assert_eq!(layer[3], 3);
    }

    #[test]
    fn barycentres_uncross_two_pairs() {
        // 0 → 3, 1 → 2: the second layer is ordered 3, 2.
        let layer = [0, 0, 1, 1];
        let order = ordering(4, &layer, &[(0, 3), (1, 2)]);
        assert_eq!(order, vec![vec![0, 1], vec![3, 2]]);
    }

    #[test]
    fn svg_is_escaped_deterministic_and_accessible() {
        let g = graph(&[("orders", "<system>", "get \"x\" & y")]);
        let link = |n: &Node| (n.shape == Shape::Route).then(|| format!("/r/{}", n.name));
        let a = svg(&g, "Routes & systems", &link);
        assert_eq!(a, svg(&g, "Routes & systems", &link));
        assert!(a.starts_with("<svg "), "{a}");
        assert!(
            a.contains("<title id=\"graph-title\">Routes &amp; systems</title>"),
            "{a}"
        );
        assert!(a.contains("&lt;system&gt;"), "{a}");
        assert!(!a.contains("<system>"), "{a}");
        assert!(a.contains("get &quot;x&quot; &amp; y"), "{a}");
        assert!(a.contains("<a href=\"/r/orders\""), "{a}");
        assert!(a.contains("route orders to adapter &lt;system&gt;"), "{a}");
        assert!(a.contains("role=\"img\""), "{a}");
        // Every element is closed: the text parses as XML.
        let mut reader = quick_xml::Reader::from_str(&a);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("{e}: {a}"),
            }
        }
        assert!(svg(&Graph::default(), "empty", &|_| None).ends_with("</svg>"));
    }
}
