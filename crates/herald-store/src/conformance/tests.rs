//! Keeps the `conformance_tests!` list and the check functions in step.
//!
//! A check that is written but not listed would never run on any backend, and no compiler
//! warning says so (it is `pub`). These tests read the conformance sources and compare.

use std::collections::BTreeSet;

/// Where the conformance sources are; read at test time so that a new file is seen without
/// being named here.
const CONFORMANCE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/conformance");

/// What opens the macro's list of checks.
const LIST_START: &str = "$crate::conformance_tests!(@each $make;";

/// A check as `(area, name)`: the module it is in and its function name.
type Check = (String, String);

/// Each conformance source as `(area, text)`, where the area is its file stem (`mod` for the
/// module root, which should hold no checks). This file is left out: it names no check.
fn conformance_sources() -> Vec<(String, String)> {
    let mut sources = Vec::new();
    let entries = std::fs::read_dir(CONFORMANCE_DIR).expect("conformance directory readable");
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let Some(area) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        if path.extension().and_then(|extension| extension.to_str()) != Some("rs")
            || area == "tests"
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("conformance source readable");
        sources.push((area.to_owned(), text));
    }
    sources
}

/// Every `pub async fn` in these sources: by the module's rule, each one is a check.
fn written_checks(sources: &[(String, String)]) -> BTreeSet<Check> {
    let mut checks = BTreeSet::new();
    for (area, text) in sources {
        for (at, found) in text.match_indices("pub async fn ") {
            let after = &text[at + found.len()..];
            let name: String = after
                .chars()
                .take_while(|character| character.is_ascii_alphanumeric() || *character == '_')
                .collect();
            checks.insert((area.clone(), name));
        }
    }
    checks
}

/// Every `area: [name, ...]` entry of the macro's list in `module_root` (the text of `mod.rs`).
fn listed_checks(module_root: &str) -> BTreeSet<Check> {
    let start = module_root
        .find(LIST_START)
        .expect("mod.rs still opens the list with `$crate::conformance_tests!(@each $make;`")
        + LIST_START.len();
    let length = module_root[start..]
        .find(");")
        .expect("the list ends with `);`");
    let list: Vec<&str> = module_root[start..start + length]
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _comment)| code))
        .collect();
    let list = list.join("\n");

    let mut checks = BTreeSet::new();
    for group in list.split(']') {
        let Some((area, names)) = group.split_once('[') else {
            assert!(
                group.trim().trim_matches(',').trim().is_empty(),
                "unexpected text in the list: {group:?}"
            );
            continue;
        };
        let area = area
            .trim()
            .trim_start_matches(',')
            .trim()
            .trim_end_matches(':');
        for name in names
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            checks.insert((area.trim().to_owned(), name.to_owned()));
        }
    }
    checks
}

fn module_root(sources: &[(String, String)]) -> &str {
    sources
        .iter()
        .find(|(area, _)| area == "mod")
        .map(|(_, text)| text.as_str())
        .expect("conformance/mod.rs present")
}

#[test]
fn every_written_check_is_listed_and_every_listed_check_is_written() {
    let sources = conformance_sources();
    let written = written_checks(&sources);
    let listed = listed_checks(module_root(&sources));

    let not_listed: Vec<&Check> = written.difference(&listed).collect();
    let not_written: Vec<&Check> = listed.difference(&written).collect();
    assert!(
        not_listed.is_empty() && not_written.is_empty(),
        "`conformance_tests!` in conformance/mod.rs and the checks disagree.\n\
         Written but not listed (add them under their module's name): {not_listed:?}\n\
         Listed but not written there (a `pub async fn` in that module): {not_written:?}"
    );
    // The parsing found the suite, not an empty list on each side.
    assert!(written.len() >= 30, "only {} checks found", written.len());
}

/// The comparison above would catch a forgotten name: drop one from the list and it is reported.
#[test]
fn a_check_left_out_of_the_list_is_reported() {
    let sources = conformance_sources();
    let root = module_root(&sources);
    let forgotten = "                retry_and_replay,\n";
    assert!(root.contains(forgotten), "the list names retry_and_replay");

    let without = root.replacen(forgotten, "", 1);
    let missing: Vec<Check> = written_checks(&sources)
        .difference(&listed_checks(&without))
        .cloned()
        .collect();
    assert_eq!(
        missing,
        vec![("attempts".to_owned(), "retry_and_replay".to_owned())]
    );
}
