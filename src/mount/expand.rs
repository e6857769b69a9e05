//! Patterns as `objectName`: each pattern entry becomes one object per enabled match in its vault's
//! listing, before anything is fetched. The result is checked like a class's objects at validation
//! (collisions, the volume's file count) and bounded by [`MAX_OBJECTS`].
//!
//! An object named by an entry of its own is never mounted again by a pattern (the explicit entry
//! wins, wherever it is), and a name two patterns match is mounted by the first.

use std::collections::HashSet;

use super::MountError;
use super::fetch::Fetcher;
use super::layout;
use super::objects::{MAX_OBJECTS, ObjectSpec, pattern};
use crate::keyvault::ObjectKind;
use crate::keyvault::models::version_of;

/// An object as the vault knows it: type, vault, lower-case name.
type Identity = (ObjectKind, String, String);

impl Fetcher<'_> {
    /// The Mount's objects with every pattern replaced by its matches, in SecretProviderClass order
    /// (matches of one pattern in name order, so that files and ids are stable across Mounts).
    pub(super) async fn expand_patterns(&self) -> Result<Vec<ObjectSpec>, MountError> {
        let patterns = self.plan.objects.iter().filter(|o| o.pattern.is_some());
        // Every listing at once: one round trip per page, whatever the number of patterns.
        let listings =
            futures_util::future::try_join_all(patterns.map(|spec| self.matches(spec))).await?;
        let mut listings = listings.into_iter();
        let mut taken: HashSet<Identity> = self
            .plan
            .objects
            .iter()
            .filter(|o| o.pattern.is_none())
            .map(|o| self.identity(o, &o.name))
            .collect();
        let mut out = Vec::with_capacity(self.plan.objects.len());
        for spec in &self.plan.objects {
            if spec.pattern.is_none() {
                out.push(spec.clone());
                continue;
            }
            let names = listings.next().unwrap_or_default();
            let before = out.len();
            for name in names {
                if taken.insert(self.identity(spec, &name)) {
                    out.push(matched(spec, name));
                }
            }
            self.check_count(spec, out.len() - before, out.len())?;
        }
        let mut findings = Vec::new();
        layout::check_volume(
            &out,
            self.config.write_cert_and_key_in_separate_files,
            &mut findings,
        );
        if findings.is_empty() {
            Ok(out)
        } else {
            Err(MountError::Invalid(findings))
        }
    }

    fn identity(&self, spec: &ObjectSpec, name: &str) -> Identity {
        (
            spec.kind,
            self.vault_of(spec).to_ascii_lowercase(),
            name.to_ascii_lowercase(),
        )
    }

    /// No match is an error unless the entry is optional (a misspelt prefix or the wrong vault
    /// should not mount an empty directory silently); too many objects is one.
    fn check_count(&self, spec: &ObjectSpec, found: usize, total: usize) -> Result<(), MountError> {
        let message = if found == 0 && !spec.optional {
            format!(
                "no enabled {} of the vault matches the pattern; check objectName, objectType and \
                 keyvaultName, or set optional: \"true\" if the pattern may match nothing",
                spec.kind.collection()
            )
        } else if total > MAX_OBJECTS {
            format!(
                "the pattern matches {found} objects, which makes {total} objects in this Mount, more \
                 than the {MAX_OBJECTS} one SecretProviderClass may mount; narrow the pattern or split \
                 the objects over several SecretProviderClasses"
            )
        } else {
            tracing::debug!(pattern = %spec.name, matches = found, "pattern expanded");
            return Ok(());
        };
        Err(self.object_error(spec, message))
    }

    /// The names of the enabled objects of the pattern's type in its vault that match it, sorted.
    async fn matches(&self, spec: &ObjectSpec) -> Result<Vec<String>, MountError> {
        let include_managed = spec.pattern.is_some_and(|p| p.include_managed);
        let items = self
            .keyvault
            .list_objects(self.caller, &self.vault_url(spec), spec.kind)
            .await
            .map_err(|error| MountError::Listing {
                vault: self.vault_of(spec).to_owned(),
                kind: spec.kind,
                pattern: spec.name.clone(),
                error,
            })?;
        let mut names: Vec<String> = items
            .into_iter()
            .filter(|item| item.attributes.enabled.unwrap_or(true))
            .filter(|item| include_managed || item.managed != Some(true))
            .filter_map(|item| item.id.or(item.kid))
            .map(|id| version_of(&id).to_owned())
            .filter(|name| pattern::matches(&spec.name, name))
            .collect();
        names.sort_by_key(|n| n.to_ascii_lowercase());
        names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        Ok(names)
    }
}

/// One match of a pattern entry: the entry's settings, the object's name, its file under the
/// entry's directory. A match that disappears between the listing and its read is skipped like an
/// optional object: it no longer matches.
fn matched(spec: &ObjectSpec, name: String) -> ObjectSpec {
    ObjectSpec {
        alias: format!("{}{name}", spec.alias),
        name,
        pattern: None,
        optional: true,
        ..spec.clone()
    }
}
