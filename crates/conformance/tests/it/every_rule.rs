//! Every rule of every kit has a mutant here: a `#[should_panic]` test that runs it on a
//! store, strategy or catalog that breaks it. A new rule without one fails this test.

/// The kits' sources, by the module that names their rules.
const KITS: [(&str, &str); 3] = [
    ("store", include_str!("../../src/store.rs")),
    ("strategy", include_str!("../../src/strategy.rs")),
    ("catalog", include_str!("../../src/catalog.rs")),
];

/// The sources of the mutants.
const MUTANTS: [&str; 5] = [
    include_str!("ability_mutants.rs"),
    include_str!("catalog_mutants.rs"),
    include_str!("kit.rs"),
    include_str!("store_mutants.rs"),
    include_str!("strategy_mutants.rs"),
];

/// The rules of a kit: its public functions at the top level of its module.
fn rules(source: &str) -> Vec<&str> {
    source
        .lines()
        .filter_map(|line| {
            let rest = line
                .strip_prefix("pub async fn ")
                .or_else(|| line.strip_prefix("pub fn "))?;
            rest.split('(').next()
        })
        .collect()
}

/// The bodies of the `#[should_panic]` tests.
fn should_panic_tests() -> Vec<&'static str> {
    MUTANTS
        .iter()
        .flat_map(|source| source.split("#[should_panic").skip(1))
        .map(|test| test.split("\n}\n").next().unwrap_or(test))
        .collect()
}

#[test]
fn every_rule_has_a_mutant_that_fails_it() {
    let tests = should_panic_tests();
    let mut without = Vec::new();
    let mut count = 0;
    for (kit, source) in KITS {
        for rule in rules(source) {
            count += 1;
            let call = format!("{kit}::{rule}(");
            if !tests.iter().any(|test| test.contains(&call)) {
                without.push(call);
            }
        }
    }
    assert!(
        count >= 30,
        "found only {count} rules: is the parsing right?"
    );
    assert!(without.is_empty(), "rules without a mutant: {without:?}");
}
