//! Reading a rules directory (`[rules] dir`): the file system side of the rule set, which the
//! core ([`crate::reading::rules`]) compiles from text.

use std::path::Path;

use crate::reading::rules::{RuleSet, RulesError};

/// Every `*.toml` file in `dir`, read in name order, compiled into one rule set.
pub fn load_rules_dir(dir: &Path) -> Result<RuleSet, RulesError> {
    let read_dir = |source| RulesError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let path = entry.map_err(read_dir)?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(RulesError::NoFiles {
            dir: dir.to_path_buf(),
        });
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| RulesError::ReadFile {
            path: path.clone(),
            source,
        })?;
        files.push((path.display().to_string(), text));
    }
    RuleSet::from_sources(&files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_copy_matches_rules_dir() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let from_dir = load_rules_dir(&dir).unwrap();
        let shipped = RuleSet::shipped();
        assert_eq!(from_dir.rules().len(), shipped.rules().len());
        for (a, b) in from_dir.rules().iter().zip(shipped.rules()) {
            assert_eq!((&a.id, &a.subject, &a.body), (&b.id, &b.subject, &b.body));
            assert!(a.file.ends_with(&b.file), "{} vs {}", a.file, b.file);
        }
    }

    #[test]
    fn load_dir_errors_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_rules_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no *.toml") && e.contains("[rules] dir"), "{e}");
        let e = load_rules_dir(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read rules directory"), "{e}");
    }
}
