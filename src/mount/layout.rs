//! The volume's layout: which files each object writes (its alias, history entries, split files),
//! and collisions between the files of different objects (the same file twice, or a file where
//! another object needs a directory). Found at validation, each is reported at the later object of
//! the pair: that is the one to change.

use std::collections::BTreeMap;

use super::findings::{Finding, ListItem};
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
    files(spec, split_files)
        .into_iter()
        .map(|file| file.path)
        .collect()
}

/// A file an object writes, and where its name comes from.
struct File {
    path: String,
    /// The `jmesPath` item whose `objectAlias` names it; `None`: the object's own `objectAlias`.
    item: Option<usize>,
}

/// [`planned`], each file with the field that names it, so that a collision is located there.
fn files(spec: &ObjectSpec, split_files: bool) -> Vec<File> {
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
    let own = bases.iter().flat_map(|base| {
        suffixes.iter().map(move |suffix| File {
            path: format!("{base}{suffix}"),
            item: None,
        })
    });
    // An object is valid only when every item is: its keys are the items as written, in order.
    let keys = spec.json_keys.iter().enumerate().map(|(i, key)| File {
        path: key.alias.clone(),
        item: Some(i),
    });
    own.chain(keys).collect()
}

/// A collision, located at the field of `spec` that names the file: the object's `objectAlias`
/// (`item` `None`), or the `objectAlias` of its `jmesPath` item `item`.
fn at_file(spec: &ObjectSpec, item: Option<usize>, message: String) -> Finding {
    match item {
        None => Finding::object(spec.index, Some("objectAlias"), message),
        Some(index) => {
            let item = ListItem {
                index,
                key: "objectAlias",
            };
            Finding::object_item(spec.index, "jmesPath", item, message)
        }
    }
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
/// finding is located at the later object's path field (its `objectAlias`, or that of the `jmesPath`
/// item naming the file), the object named by its index in the array as written.
pub fn check_collisions(objects: &[ObjectSpec], split_files: bool, errors: &mut Vec<Finding>) {
    // Each alias passed; what history mode and split files add to it may still be too long.
    for spec in objects {
        if let Some((file, problem)) = files(spec, split_files)
            .into_iter()
            .find_map(|file| check(&file.path).err().map(|problem| (file, problem)))
        {
            let message = format!(
                "{}: objectAlias {:?} gives the file {:?}, which {problem}",
                name(spec),
                spec.alias,
                file.path
            );
            errors.push(at_file(spec, file.item, message));
        }
    }
    // Each file, with the object that writes it and the item naming it (see `File`).
    let mut owners: BTreeMap<String, (&ObjectSpec, Option<usize>)> = BTreeMap::new();
    let mut reported = std::collections::BTreeSet::new();
    // The later object of the pair is the one to change, whichever the message names first; within
    // one object (an item's alias equal to the object's), the second file of the pair.
    let mut report = |a: (&ObjectSpec, Option<usize>), b: (&ObjectSpec, Option<usize>), message| {
        let (later, item) = if b.0.index >= a.0.index { b } else { a };
        if reported.insert((a.0.index.min(b.0.index), later.index)) {
            errors.push(at_file(later, item, message));
        }
    };
    for spec in objects {
        for file in files(spec, split_files) {
            if let Some(&owner) = owners.get(&file.path) {
                let message = format!(
                    "{} and {} both write the file {:?}; give one of them another objectAlias",
                    name(owner.0),
                    name(spec),
                    file.path
                );
                report(owner, (spec, file.item), message);
                continue;
            }
            owners.insert(file.path, (spec, file.item));
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
                name(file_owner.0),
                name(dir_owner.0)
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

    /// A collision with a jmesPath item's file is located at that item's objectAlias; the
    /// messages are the same as for objects' own files.
    #[test]
    fn a_collision_with_a_jmes_path_file_is_located_at_its_item() {
        use crate::mount::findings::Location;
        let at_item = |index, item| Location::Object {
            index,
            field: Some("jmesPath"),
            item: Some(ListItem {
                index: item,
                key: "objectAlias",
            }),
        };
        let specs = objects(&[
            "objectName: a\nobjectType: secret\nobjectAlias: shared",
            "objectName: b\nobjectType: secret\njmesPath:\n  - path: u\n    objectAlias: u\n  - path: p\n    objectAlias: shared",
            "objectName: c\nobjectType: secret\njmesPath:\n  - path: u\n    objectAlias: c",
        ]);
        let mut errors = Vec::new();
        check_collisions(&specs, false, &mut errors);
        let found: Vec<(Location, &str)> = errors
            .iter()
            .map(|f| (f.location.clone(), f.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    at_item(1, 1),
                    "objects.array[0] (a) and objects.array[1] (b) both write the file \"shared\"; \
                     give one of them another objectAlias"
                ),
                (
                    at_item(2, 0),
                    "objects.array[2] (c) and objects.array[2] (c) both write the file \"c\"; give \
                     one of them another objectAlias"
                ),
            ]
        );
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
