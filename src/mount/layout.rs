//! The volume's layout: which files each object writes (its alias, history entries, split files),
//! and collisions between the files of different objects (the same file twice, or a file where
//! another object needs a directory). Found at validation, each is reported at the later object of
//! the pair: that is the one to change.

use std::collections::BTreeMap;

use super::findings::Finding;
use super::objects::ObjectSpec;
use super::paths::check;
use crate::keyvault::ObjectKind;

/// Files one Mount may write (objects × history × split files): far above real volumes, low enough
/// that a response stays a reasonable size for the driver to write.
pub const MAX_FILES: usize = 1024;

/// Every path an object may write: its alias (or `alias/i` in history mode), plus `.crt` and
/// `.key` beside each when the split-files flag is on and the object is a PEM secret (whether it is
/// certificate-backed is only known after the fetch, so the split files are reserved either way),
/// plus its `jmesPath` files. A pattern's files are only known once the vault is listed: none here,
/// and the Mount checks the layout again with the matches ([`check_volume`]).
pub fn planned(spec: &ObjectSpec, split_files: bool) -> Vec<String> {
    if spec.pattern.is_some() {
        return Vec::new();
    }
    let bases: Vec<String> = if spec.history > 1 {
        (0..spec.history)
            .map(|i| format!("{}/{i}", spec.alias))
            .collect()
    } else {
        vec![spec.alias.clone()]
    };
    // Convert decides which files an object's conversion may write; the split files are
    // reserved whether or not the secret turns out to be certificate-backed.
    let suffixes = crate::convert::files::possible_suffixes(
        spec.kind == ObjectKind::Secret,
        spec.format,
        split_files,
    );
    bases
        .iter()
        .flat_map(|base| suffixes.iter().map(move |suffix| format!("{base}{suffix}")))
        .chain(spec.json_keys.iter().map(|key| key.alias.clone()))
        .collect()
}

/// The volume as a whole: no two objects writing one file ([`check_collisions`]) and at most
/// [`MAX_FILES`] files. Run at validation, and again by a Mount whose patterns were expanded.
pub fn check_volume(objects: &[ObjectSpec], split_files: bool, errors: &mut Vec<Finding>) {
    check_collisions(objects, split_files, errors);
    let files: usize = objects.iter().map(|o| planned(o, split_files).len()).sum();
    if files > MAX_FILES {
        errors.push(Finding::objects(format!(
            "objects: these objects write {files} files, more than the {MAX_FILES} one volume may hold; \
             lower objectVersionHistory, narrow a pattern or split the objects over several \
             SecretProviderClasses"
        )));
    }
}

/// Refuses two objects writing the same file, and one object's file standing where another needs a
/// directory (`tls` beside `tls/0`); and paths that history or split files make too long. Each
/// finding is located at the later object's path field, named by its index in the array as written.
pub fn check_collisions(objects: &[ObjectSpec], split_files: bool, errors: &mut Vec<Finding>) {
    // Each alias passed; what history mode and split files add to it may still be too long.
    for spec in objects {
        if let Some((path, problem)) = planned(spec, split_files)
            .into_iter()
            .find_map(|path| check(&path).err().map(|problem| (path, problem)))
        {
            let message = format!(
                "{}: objectAlias {:?} gives the file {path:?}, which {problem}",
                name(spec),
                spec.alias
            );
            errors.push(Finding::object(spec.index, Some("objectAlias"), message));
        }
    }
    let mut owners: BTreeMap<String, &ObjectSpec> = BTreeMap::new();
    let mut reported = std::collections::BTreeSet::new();
    // The later object of the pair is the one to change, whichever the message names first.
    let mut report = |a: &ObjectSpec, b: &ObjectSpec, message: String| {
        let later = a.index.max(b.index);
        if reported.insert((a.index.min(b.index), later)) {
            errors.push(Finding::object(later, Some("objectAlias"), message));
        }
    };
    for spec in objects {
        for path in planned(spec, split_files) {
            if let Some(&owner) = owners.get(&path) {
                let message = format!(
                    "{} and {} both write the file {path:?}; give one of them another objectAlias",
                    name(owner),
                    name(spec)
                );
                report(owner, spec, message);
                continue;
            }
            owners.insert(path, spec);
        }
    }
    // A file that is also a directory: `a` and `a/…`. Sorted keys put `a/…` right after `a` or
    // after siblings such as `a.crt`, so look each file up as a prefix.
    for (path, &file_owner) in &owners {
        let dir = format!("{path}/");
        if let Some((other, &dir_owner)) = owners.range(dir.clone()..).next()
            && other.starts_with(&dir)
        {
            let message = format!(
                "{} writes the file {path:?} but {} writes {other:?} inside a directory of that name; \
                 give one of them another objectAlias",
                name(file_owner),
                name(dir_owner)
            );
            report(file_owner, dir_owner, message);
        }
    }
}

/// `objects.array[i] (name)`, as the object's own findings start.
fn name(spec: &ObjectSpec) -> String {
    format!("objects.array[{}] ({})", spec.index, spec.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(yaml_objects: &[&str]) -> Vec<ObjectSpec> {
        let mut yaml = String::from("array:\n");
        for o in yaml_objects {
            yaml.push_str("  - |\n");
            for line in o.lines() {
                yaml.push_str(&format!("    {line}\n"));
            }
        }
        let mut errors = Vec::new();
        let specs = super::super::objects::parse(&yaml, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        specs
    }

    fn collisions(specs: &[ObjectSpec], split: bool) -> Vec<String> {
        let mut errors = Vec::new();
        check_collisions(specs, split, &mut errors);
        errors.into_iter().map(|f| f.message).collect()
    }

    #[test]
    fn split_files_and_history_paths_are_planned() {
        let specs = objects(&[
            "objectName: tls\nobjectType: secret",
            "objectName: k\nobjectType: key\nobjectVersionHistory: 2",
            "objectName: p\nobjectType: secret\nobjectFormat: pfx",
        ]);
        assert_eq!(planned(&specs[0], true), ["tls", "tls.crt", "tls.key"]);
        assert_eq!(planned(&specs[0], false), ["tls"]);
        assert_eq!(planned(&specs[1], true), ["k/0", "k/1"]);
        assert_eq!(planned(&specs[2], true), ["p"]);
    }

    #[test]
    fn a_split_file_colliding_with_an_alias_is_refused_only_when_splitting() {
        let specs = objects(&[
            "objectName: tls\nobjectType: secret",
            "objectName: ca\nobjectType: cert\nobjectAlias: tls.crt",
        ]);
        assert!(collisions(&specs, false).is_empty());
        let errors = collisions(&specs, true);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("objects.array[0] (tls)")
                && errors[0].contains("objects.array[1] (ca)")
                && errors[0].contains("\"tls.crt\""),
            "{errors:?}"
        );
    }

    #[test]
    fn a_file_where_a_history_directory_goes_is_refused() {
        let specs = objects(&[
            "objectName: a\nobjectType: secret\nobjectAlias: api",
            "objectName: b\nobjectType: secret\nobjectAlias: api\nobjectVersionHistory: 3",
        ]);
        let errors = collisions(&specs, false);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("inside a directory"), "{errors:?}");
        let specs = objects(&[
            "objectName: a\nobjectType: secret\nobjectAlias: api/1",
            "objectName: b\nobjectType: secret\nobjectAlias: api\nobjectVersionHistory: 3",
        ]);
        let errors = collisions(&specs, false);
        assert!(
            errors.len() == 1 && errors[0].contains("both write the file \"api/1\""),
            "{errors:?}"
        );
        let fine = objects(&[
            "objectName: a\nobjectType: secret\nobjectAlias: api.txt",
            "objectName: b\nobjectType: secret\nobjectAlias: api\nobjectVersionHistory: 3",
        ]);
        assert!(collisions(&fine, true).is_empty());
    }

    #[test]
    fn a_history_or_split_path_over_the_limit_is_refused() {
        let alias = vec!["a".repeat(200); 20].join("/") + "/" + &"b".repeat(76);
        assert!(alias.len() == 4096 && check(&alias).is_ok());
        let specs = objects(&[&format!(
            "objectName: s\nobjectType: secret\nobjectAlias: {alias}\nobjectVersionHistory: 10"
        )]);
        let errors = collisions(&specs, false);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("objects.array[0] (s): objectAlias")
                && errors[0].contains("bytes long; the limit is 4096"),
            "{errors:?}"
        );
    }
}
