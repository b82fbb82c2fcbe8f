//! The configuration reference (`docs/configuration.md`) and `config/default.yaml` name the
//! same keys: every leaf key of the file has a row in the reference's tables, and every row
//! names a key of the file.

use super::DEFAULT_YAML;
use std::collections::BTreeSet;

const REFERENCE: &str = include_str!("../../../../docs/configuration.md");

/// Leaf key paths of a YAML document; free-form maps (`headers`, `patterns`, `peer_service`)
/// are leaves.
fn leaves(v: &serde_yaml_ng::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_yaml_ng::Value::Mapping(m)
            if ![".headers", ".patterns", ".peer_service"]
                .iter()
                .any(|f| prefix.ends_with(f)) =>
        {
            for (k, v) in m {
                let key = k.as_str().expect("string keys");
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(v, &path, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// The key of every table row: the backticked first cell of lines `| \`key\` | … |`.
fn reference_keys(md: &str) -> Vec<String> {
    md.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .map(|(k, _)| k.to_string())
        .collect()
}

#[test]
fn reference_and_default_yaml_name_the_same_keys() {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(DEFAULT_YAML).unwrap();
    let mut file = BTreeSet::new();
    leaves(&yaml, "", &mut file);
    let rows = reference_keys(REFERENCE);
    let doc: BTreeSet<String> = rows.iter().cloned().collect();
    assert_eq!(doc.len(), rows.len(), "a key has two rows");
    let missing: Vec<_> = file.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&file).collect();
    assert!(
        missing.is_empty(),
        "keys of config/default.yaml missing in docs/configuration.md: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "docs/configuration.md names keys config/default.yaml lacks: {extra:?}"
    );
    assert!(doc.contains("receiver.kernel_timing.layers"));
    assert!(file.len() >= 40, "{file:?}");
}

#[test]
fn reference_defaults_match_the_builtin_values() {
    // The default column, read as YAML, equals the built-in value of each leaf key.
    let builtin = serde_yaml_ng::to_value(super::Config::default()).unwrap();
    for line in REFERENCE.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let key = cells[0].trim_start_matches("| `").trim_end_matches('`');
        let shown = cells[1].split(' ').next().unwrap().trim_matches('`');
        let shown: serde_yaml_ng::Value = serde_yaml_ng::from_str(shown)
            .unwrap_or_else(|e| panic!("{key}: default {shown:?}: {e}"));
        let mut v = &builtin;
        for part in key.split('.') {
            v = &v[part];
        }
        assert_eq!(&shown, v, "{key}");
    }
}
