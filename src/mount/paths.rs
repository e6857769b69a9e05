//! The paths of returned files: the driver's rules for each path (its AtomicWriter validation,
//! spec 1.4), and collisions between the files of different objects. Checking both at validation
//! turns a volume that would fail inside the driver with a terse message (or silently lose a file)
//! into an error that names the objects.

use std::collections::BTreeMap;

use super::objects::ObjectSpec;
use crate::convert::ObjectFormat;
use crate::keyvault::ObjectKind;

/// Files one Mount may write (objects × history × split files): far above real volumes, low enough
/// that a response stays a reasonable size for the driver to write.
pub const MAX_FILES: usize = 1024;

/// Checks a relative file path; the error says what is wrong.
pub fn check(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".to_owned());
    }
    if path.len() > 4096 {
        return Err(format!(
            "is {} characters long; the limit is 4096",
            path.len()
        ));
    }
    if path.starts_with('/') {
        return Err("is absolute; use a relative path such as tls/cert.pem".to_owned());
    }
    if path.starts_with("..") {
        return Err("starts with '..'".to_owned());
    }
    for element in path.split('/') {
        if element.len() > 255 {
            return Err(format!(
                "has a path element of {} characters; the limit is 255",
                element.len()
            ));
        }
        if element == ".." {
            return Err("contains a '..' path element".to_owned());
        }
        if element.is_empty() {
            return Err("has an empty path element (a doubled or trailing '/')".to_owned());
        }
        if element == "." {
            return Err("contains a '.' path element".to_owned());
        }
    }
    Ok(())
}

/// Every path an object may write: its alias (or `alias/i` in history mode), plus `.crt` and
/// `.key` beside each when the split-files flag is on and the object is a PEM secret (whether it is
/// certificate-backed is only known after the fetch, so the split files are reserved either way).
pub fn planned(spec: &ObjectSpec, split_files: bool) -> Vec<String> {
    let bases: Vec<String> = if spec.history > 1 {
        (0..spec.history)
            .map(|i| format!("{}/{i}", spec.alias))
            .collect()
    } else {
        vec![spec.alias.clone()]
    };
    let split = split_files && spec.kind == ObjectKind::Secret && spec.format == ObjectFormat::Pem;
    bases
        .into_iter()
        .flat_map(|base| {
            let extra = if split {
                vec![format!("{base}.crt"), format!("{base}.key")]
            } else {
                Vec::new()
            };
            std::iter::once(base).chain(extra)
        })
        .collect()
}

/// Refuses two objects writing the same file, and one object's file standing where another needs a
/// directory (`tls` beside `tls/0`).
pub fn check_collisions(objects: &[ObjectSpec], split_files: bool, errors: &mut Vec<String>) {
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    let mut reported = std::collections::BTreeSet::new();
    let mut report = |a: usize, b: usize, message: String| {
        if reported.insert((a.min(b), a.max(b))) {
            errors.push(message);
        }
    };
    let name = |i: usize| format!("objects.array[{i}] ({})", objects[i].name);
    for (i, spec) in objects.iter().enumerate() {
        for path in planned(spec, split_files) {
            if let Some(&j) = owners.get(&path) {
                report(
                    j,
                    i,
                    format!(
                        "{} and {} both write the file {path:?}; give one of them another objectAlias",
                        name(j),
                        name(i)
                    ),
                );
                continue;
            }
            owners.insert(path, i);
        }
    }
    // A file that is also a directory: `a` and `a/…`. Sorted keys put `a/…` right after `a` or
    // after siblings such as `a.crt`, so look each file up as a prefix.
    for (path, &i) in &owners {
        let dir = format!("{path}/");
        if let Some((other, &j)) = owners.range(dir.clone()..).next()
            && other.starts_with(&dir)
        {
            report(
                i,
                j,
                format!(
                    "{} writes the file {path:?} but {} writes {other:?} inside a directory of that name; \
                     give one of them another objectAlias",
                    name(i),
                    name(j)
                ),
            );
        }
    }
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
        errors
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
    fn accepts_what_the_driver_accepts() {
        for ok in [
            "a",
            "tls.crt",
            "dir/sub/file",
            "tls..pem",
            "a..b/c",
            ".hidden",
            "x/.y",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_what_the_driver_rejects() {
        let long = "a".repeat(256);
        for bad in [
            "",
            "/abs",
            "../x",
            "..x",
            "a/../b",
            "a/..",
            "./a",
            "a/",
            "a//b",
            "a/./b",
            long.as_str(),
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check(&"a/".repeat(2100)).is_err());
    }
}
