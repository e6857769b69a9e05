//! The paths of returned files: the driver's rules for each path (its AtomicWriter validation,
//! spec 1.4), and collisions between the files of different objects. Checking both at validation
//! turns a volume that would fail inside the driver with a terse message (or silently lose a file)
//! into an error that names the objects.

use std::collections::BTreeMap;

use super::objects::ObjectSpec;
use crate::keyvault::ObjectKind;

/// Files one Mount may write (objects × history × split files): far above real volumes, low enough
/// that a response stays a reasonable size for the driver to write.
pub const MAX_FILES: usize = 1024;

/// A character that no file name should carry: one the kubelet cannot write, or one that makes a
/// name look like another (a path that only looks like `tls/cert.pem`). Returns the first one and
/// what it is. Ordinary Unicode (`pässwort`, `密码`) passes: Linux stores names as given.
pub fn suspicious_char(text: &str) -> Option<(char, &'static str)> {
    text.chars().find_map(|c| Some((c, describe_char(c)?)))
}

fn describe_char(c: char) -> Option<&'static str> {
    Some(match c {
        '\0' => "NUL, which no file name can hold",
        c if c.is_control() => "a control character",
        '\u{2024}' | '\u{2025}' | '\u{2026}' | '\u{FE52}' | '\u{FF0E}' => "a look-alike of '.'",
        '\u{2044}' | '\u{2215}' | '\u{2571}' | '\u{29F8}' | '\u{FF0F}' | '\u{1735}' => {
            "a look-alike of '/'"
        }
        '\u{2028}' | '\u{2029}' => "a line or paragraph separator",
        '\u{00A0}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200A}'
        | '\u{202F}'
        | '\u{205F}'
        | '\u{3000}' => "a space that looks like an ordinary one",
        // Unicode's format characters (category Cf): zero-width characters, bidirectional
        // controls (which display a name in another order than it is stored), invisible
        // operators and tags.
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}' => {
            "an invisible formatting character (zero-width or bidirectional control)"
        }
        _ => return None,
    })
}

/// `U+XXXX (what it is)`, for messages (the character itself may be invisible or misleading).
pub fn name_char((c, what): (char, &str)) -> String {
    format!("U+{:04X} ({what})", u32::from(c))
}

/// Checks a relative file path; the error says what is wrong.
pub fn check(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".to_owned());
    }
    if let Some(found) = suspicious_char(path) {
        return Err(format!(
            "contains {}; use letters, digits, '.', '-', '_' and '/'",
            name_char(found)
        ));
    }
    if path.len() > 4096 {
        return Err(format!("is {} bytes long; the limit is 4096", path.len()));
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
                "has a path element of {} bytes; the limit is 255",
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
    let suffixes = crate::convert::files::possible_suffixes(
        spec.kind == ObjectKind::Secret,
        spec.format,
        split_files,
    );
    bases
        .iter()
        .flat_map(|base| suffixes.iter().map(move |suffix| format!("{base}{suffix}")))
        .collect()
}

/// Refuses two objects writing the same file, and one object's file standing where another needs a
/// directory (`tls` beside `tls/0`).
pub fn check_collisions(objects: &[ObjectSpec], split_files: bool, errors: &mut Vec<String>) {
    // Each alias passed; what history mode and split files add to it may still be too long.
    for (i, spec) in objects.iter().enumerate() {
        if let Some((path, problem)) = planned(spec, split_files)
            .into_iter()
            .find_map(|path| check(&path).err().map(|problem| (path, problem)))
        {
            errors.push(format!(
                "objects.array[{i}] ({}): objectAlias {:?} gives the file {path:?}, which {problem}",
                spec.name, spec.alias
            ));
        }
    }
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

    /// Regression: an alias with a NUL byte was accepted (the driver then failed to write the file
    /// with an error nobody could relate to the SecretProviderClass), and so were characters that
    /// only look like '.' or '/', invisible ones and bidirectional controls (Azure issue #1544).
    #[test]
    fn refuses_names_the_kubelet_cannot_write_or_that_only_look_safe() {
        for (bad, code) in [
            ("a\0b", "U+0000 (NUL"),
            ("tab\there", "U+0009 (a control"),
            ("del\u{7f}", "U+007F (a control"),
            ("c1\u{85}", "U+0085 (a control"),
            ("tls\u{FF0E}pem", "U+FF0E (a look-alike of '.')"),
            ("\u{2024}\u{2024}/etc", "U+2024 (a look-alike of '.')"),
            ("etc\u{2215}passwd", "U+2215 (a look-alike of '/')"),
            ("etc\u{2044}passwd", "U+2044 (a look-alike of '/')"),
            ("zero\u{200B}width", "U+200B (an invisible"),
            ("joiner\u{2060}", "U+2060 (an invisible"),
            ("bom\u{FEFF}", "U+FEFF (an invisible"),
            ("rtl\u{202E}gpj.exe", "U+202E (an invisible"),
            ("iso\u{2066}late", "U+2066 (an invisible"),
            ("nb\u{A0}sp", "U+00A0 (a space"),
            ("line\u{2028}sep", "U+2028 (a line"),
            ("tag\u{E0041}", "U+E0041 (an invisible"),
        ] {
            let err = check(bad).expect_err(bad);
            assert!(err.contains(code), "{bad:?}: {err}");
        }
    }

    #[test]
    fn ordinary_unicode_names_are_kept() {
        for ok in [
            "pässwort",
            "密码",
            "пароль/ключ.pem",
            "café.crt",
            "a b",
            "emoji-🔑",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        assert_eq!(suspicious_char("密码"), None);
    }

    #[test]
    fn lengths_are_counted_in_bytes() {
        // 128 two-byte characters: 256 bytes in one element, over the 255-byte limit.
        let element = "ä".repeat(128);
        assert!(check(&element).unwrap_err().contains("256 bytes"));
        assert_eq!(check(&"ä".repeat(127)), Ok(()));
        let path = vec!["a".repeat(200); 21].join("/");
        assert!(check(&path).unwrap_err().contains("4220 bytes long"));
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
