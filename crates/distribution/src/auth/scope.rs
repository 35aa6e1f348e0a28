//! Token scopes: `repository:<name>:<actions>`, merged and compared as sets.

use std::collections::{BTreeMap, BTreeSet};

/// A set of resource scopes, each with its actions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeMap<String, BTreeSet<String>>);

impl ScopeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// `repository:<name>:<actions>`.
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        let mut s = Self::new();
        s.add_repository(name, actions);
        s
    }

    /// Adds actions on repository `name`.
    pub fn add_repository(&mut self, name: &str, actions: &[&str]) {
        let entry = self.0.entry(format!("repository:{name}")).or_default();
        entry.extend(actions.iter().map(|a| a.to_string()));
    }

    /// Adds a scope string as a challenge gives it (`repository:a/b:pull,push`); an odd one is
    /// kept whole.
    pub fn add_scope(&mut self, scope: &str) {
        match scope.rsplit_once(':') {
            Some((resource, actions)) if resource.contains(':') => {
                let entry = self.0.entry(resource.to_string()).or_default();
                entry.extend(
                    actions
                        .split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_string),
                );
            }
            _ => {
                self.0.entry(scope.to_string()).or_default();
            }
        }
    }

    /// Everything in `self` and `other`.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        let mut out = self.clone();
        for (k, v) in &other.0 {
            out.0
                .entry(k.clone())
                .or_default()
                .extend(v.iter().cloned());
        }
        out
    }

    /// Whether every action of `other` is in `self`.
    pub fn covers(&self, other: &ScopeSet) -> bool {
        other
            .0
            .iter()
            .all(|(k, v)| self.0.get(k).is_some_and(|mine| v.is_subset(mine)))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scope strings, one per resource, as the token endpoint takes them.
    pub fn to_strings(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}:{}", v.iter().cloned().collect::<Vec<_>>().join(","))
                }
            })
            .collect()
    }
}

/// The scopes one request needs (`required`) and those it would like in the same token
/// (`optional`: pull on the repositories a mount reads from).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes {
    /// Without these the request fails.
    pub required: ScopeSet,
    /// Asked in the same token where the token server grants them.
    pub optional: ScopeSet,
}

impl Scopes {
    /// Pull on `repository`.
    pub fn pull(repository: &str) -> Self {
        Self {
            required: ScopeSet::repository(repository, &["pull"]),
            optional: ScopeSet::new(),
        }
    }

    /// Pull and push on `repository`.
    pub fn push(repository: &str) -> Self {
        Self {
            required: ScopeSet::repository(repository, &["pull", "push"]),
            optional: ScopeSet::new(),
        }
    }

    /// Listing the registry's repositories (`registry:catalog:*`).
    pub fn catalog() -> Self {
        let mut required = ScopeSet::new();
        required.add_scope("registry:catalog:*");
        Self {
            required,
            optional: ScopeSet::new(),
        }
    }

    /// Deleting from `repository` (`delete`, with `pull` to resolve first).
    pub fn delete(repository: &str) -> Self {
        Self {
            required: ScopeSet::repository(repository, &["pull", "delete"]),
            optional: ScopeSet::new(),
        }
    }

    /// Adds pull on each of `repositories` as optional scopes.
    pub fn with_pull_from<'a>(mut self, repositories: impl IntoIterator<Item = &'a str>) -> Self {
        for r in repositories {
            self.optional.add_repository(r, &["pull"]);
        }
        self
    }

    /// Required and optional together.
    pub fn all(&self) -> ScopeSet {
        self.required.union(&self.optional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_covers() {
        let mut a = ScopeSet::repository("dst", &["pull", "push"]);
        a.add_scope("repository:src:pull");
        assert_eq!(
            a.to_strings(),
            vec!["repository:dst:pull,push", "repository:src:pull"]
        );
        assert!(a.covers(&ScopeSet::repository("dst", &["pull"])));
        assert!(!a.covers(&ScopeSet::repository("src", &["push"])));
        let mut b = ScopeSet::new();
        b.add_scope("registry:catalog:*");
        assert_eq!(b.to_strings(), vec!["registry:catalog:*"]);
        assert!(a.union(&b).covers(&b));
    }
}
