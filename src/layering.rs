//! The module layering of `docs/architecture.md` ("Layers"), checked against the sources: every
//! `crate::…` path in a module must name a module that its row allows, the table must list
//! exactly the crate's top-level modules, and the allowed uses must form no circle.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

const ARCHITECTURE: &str = include_str!("../docs/architecture.md");

/// The "Layers" table: module → the modules it may use.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let section = ARCHITECTURE
        .split("\n## Layers")
        .nth(1)
        .expect("docs/architecture.md has a \"## Layers\" section");
    let mut table = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `module` | `a`, `b` | what it does |
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let names = |cell: &str| -> BTreeSet<String> {
            cell.split(',')
                .map(|n| n.trim().trim_matches('`').to_owned())
                .filter(|n| !n.is_empty() && n != "—")
                .collect()
        };
        let module = cells[1].trim_matches('`').to_owned();
        table.insert(module, names(cells[2]));
    }
    table
}

/// Drops `//` comments (doc comments included: their links are not uses).
fn code_of(source: &str) -> String {
    source
        .lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments after every `crate::` in `code`, `crate::{a::x, b}` included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::`, `agy_crate::`
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level names of the group: split on commas at depth 0.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(group[start..i].trim_start()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(group[start..i].trim_start()));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`lib` for the root).
fn top_module(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative
        .components()
        .next()
        .expect("a file")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn every_module_uses_only_the_modules_its_layer_allows() {
    let table = allowed();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top_module(&src, f))
        .filter(|m| m != "lib")
        .collect();
    assert_eq!(
        modules,
        table.keys().cloned().collect(),
        "docs/architecture.md's Layers table must list exactly the crate's top-level modules"
    );
    let mut violations = Vec::new();
    for file in &files {
        let module = top_module(&src, file);
        if module == "lib" || module == "layering" {
            continue; // the root re-exports everything; this file's strings are examples
        }
        let code = code_of(&std::fs::read_to_string(file).expect("readable source"));
        for used in crate_paths(&code) {
            if used == module || used == "__private" {
                continue;
            }
            if !modules.contains(&used) {
                violations.push(format!(
                    "{}: `crate::{used}` is a root re-export; use its module's path",
                    file.display()
                ));
            } else if !table[&module].contains(&used) {
                violations.push(format!(
                    "{}: `{module}` may not use `{used}` (docs/architecture.md, Layers)",
                    file.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_layers_form_no_circle() {
    let table = allowed();
    // Kahn: repeatedly remove modules whose allowed uses are all removed.
    let mut left = table.clone();
    while !left.is_empty() {
        let free: Vec<String> = left
            .iter()
            .filter(|(_, uses)| uses.iter().all(|u| !left.contains_key(u)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(!free.is_empty(), "a circle among {:?}", left.keys());
        for m in free {
            left.remove(&m);
        }
    }
}

#[test]
fn the_path_scanner_sees_grouped_and_nested_uses() {
    let code = code_of(
        "use crate::{a::{X, Y}, b, c::Z};\nlet _ = crate::d::f(); // crate::e\nmacro $crate::g",
    );
    let found: Vec<String> = crate_paths(&code).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "d"]);
}
