//! The sidecar's layers, checked: the command line and the daemon on top, then the services,
//! then the base. A module may import from its own layer or a lower one, never from a higher
//! one, and imports within a layer never go round in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const TOP: &[&str] = &[
    "main", "cli", "run", "api", "metrics", "client", "status", "init", "setup", "props", "layers",
];
const SERVICES: &[&str] = &[
    "nginx", "certs", "ddns", "fetch", "library", "live", "restream", "keys", "sign", "chat",
    "telegram",
];
const BASE: &[&str] = &[
    "config",
    "config_file",
    "error",
    "clock",
    "costs",
    "dns",
    "fsutil",
    "proc",
    "address",
    "workers",
];

fn layer(module: &str) -> usize {
    [TOP, SERVICES, BASE]
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer: add it to layers.rs"))
}

/// Which top-level modules each top-level module names as `crate::NAME`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, top: Option<&str>, out: &mut BTreeMap<String, BTreeSet<String>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            let module = top.map(str::to_string).unwrap_or(stem.clone());
            if path.is_dir() {
                walk(&path, Some(&module), out);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Test modules may reach anywhere: only what ships is layered.
            let shipped = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let code: String = shipped
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let names = out.entry(module.clone()).or_default();
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    names.insert(name);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        None,
        &mut out,
    );
    out
}

#[test]
fn no_module_imports_from_a_layer_above_or_in_a_circle() {
    let graph = imports();
    for (module, names) in &graph {
        for name in names {
            assert!(
                layer(name) >= layer(module),
                "`{module}` imports `{name}`, which is in a layer above it"
            );
        }
    }
    // Within a layer: no circle (depth-first search for a back edge).
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(start) = path.iter().position(|p| *p == m) {
            panic!(
                "imports go round in a circle: {}",
                path[start..].join(" -> ") + " -> " + m
            );
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    assert!(graph.contains_key("nginx") && graph["run"].contains("nginx"));
}
